package caddymodule

import (
	"context"
	"maps"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// Protect and the routes are run on the request and on each reading of its
// raw path (rawpath.go, SECURITY.md rule 28).

// protects reports whether a protect matcher matches the request or any of
// its readings (rawPathReadings).
func (h *Handler) protects(r *http.Request, readings []string) (bool, error) {
	return h.matchesReading(h.protect, h.protectPaths, r, readings)
}

// matchesReading reports whether sets match the request or any of its
// readings: by paths, their compiled form, when they have one
// (pathmatch.go), else by Caddy's matchers. Those run the readings on a
// copy of the request with a replacer of its own, so a matcher's side
// effects (such as path_regexp's captures) stay off the request that goes
// on.
//
// A request that claims other methods (method_override.go) is also
// matched as each of them; compiled paths read no method.
func (h *Handler) matchesReading(sets caddyhttp.MatcherSets, paths *compiledPaths, r *http.Request, readings []string) (bool, error) {
	if paths != nil {
		return h.pathsMatchReading(paths, r, readings), nil
	}
	if match, err := h.matchesPathReading(sets, r, readings); match || err != nil {
		return match, err
	}
	for _, m := range claimedMethods(r) {
		claimed := readingRequest(r)
		claimed.Method = m
		match, err := h.matchesPathReading(sets, claimed, readings)
		r.Body = claimed.Body // as matchesPathReading keeps it for its own copies
		if match {
			h.logMethodMatched(r, m)
		}
		if match || err != nil {
			return match, err
		}
	}
	return false, nil
}

// matchesPathReading reports whether sets match the request or any of
// its readings of the path.
func (h *Handler) matchesPathReading(sets caddyhttp.MatcherSets, r *http.Request, readings []string) (bool, error) {
	if match, err := sets.AnyMatchWithError(r); match || err != nil {
		return match, err
	}
	var read *http.Request
	defer func() {
		if read != nil {
			// {http.request.body} reads the body and puts a copy in its place.
			r.Body = read.Body
		}
	}()
	for _, p := range readings {
		if p == r.URL.Path {
			continue
		}
		if read == nil {
			read = readingRequest(r)
		}
		read.URL.Path, read.URL.RawPath = p, ""
		if match, err := sets.AnyMatchWithError(read); match || err != nil {
			if match {
				h.logReadingMatched(r, p)
			}
			return match, err
		}
	}
	return false, nil
}

// pathsMatchReading is matchesReading for compiled path matchers, which
// read nothing but the path: no copy of the request is needed.
func (h *Handler) pathsMatchReading(paths *compiledPaths, r *http.Request, readings []string) bool {
	if paths.match(r.URL.Path) {
		return true
	}
	for _, p := range readings {
		if p != r.URL.Path && paths.match(p) {
			h.logReadingMatched(r, p)
			return true
		}
	}
	return false
}

func (h *Handler) logReadingMatched(r *http.Request, reading string) {
	h.logger.Debug("matched by a reading of the raw path", zap.String("path", logSafe(r.URL.EscapedPath())), zap.String("reading", logSafe(reading)))
}

// readingRequest is a copy of r to change the path of. Its placeholders
// about the request ({http.request.uri.path} and the like) follow the
// copy's path; the rest (the identity, vars) are r's. NewTestReplacer is
// the only exported way to get Caddy's request placeholders for a request;
// it writes start_time into the vars, so the copy gets its own vars.
func readingRequest(r *http.Request) *http.Request {
	u := *r.URL
	vars := map[string]any{}
	if v, ok := r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any); ok && v != nil {
		vars = maps.Clone(v)
	}
	read := r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, vars))
	read.URL = &u
	repl := caddyhttp.NewTestReplacer(read)
	if orig, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Map(orig.Get)
	}
	return read
}

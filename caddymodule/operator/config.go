package operator

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/caddymodule"
)

// The config the command line reads, and the sms_stepup handlers in it.

// loadOperatorConfig reads the config as `caddy run` would: --config, or
// the Caddyfile in the current directory.
func loadOperatorConfig(configFile, adapter string) ([]byte, string, error) {
	cfg, used, _, err := caddycmd.LoadConfig(configFile, adapter)
	if err != nil {
		return nil, "", err
	}
	if len(cfg) == 0 {
		return nil, "", errors.New("no config: give --config <Caddyfile or JSON>, or run in the directory of the Caddyfile")
	}
	if used == "" {
		used = "the config"
	}
	return cfg, used, nil
}

// handlerRef is one sms_stepup handler found in the config.
type handlerRef struct {
	index      int
	server     string
	hosts      []string
	pathPrefix string
	storeType  string
	storeAddr  string
	raw        json.RawMessage
}

func (r handlerRef) label() string {
	s := "#" + strconv.Itoa(r.index) + " (" + r.pathPrefix
	if len(r.hosts) > 0 {
		s += " on " + strings.Join(r.hosts, ", ")
	}
	return s + ")"
}

type jsonRoute struct {
	Match  []map[string]json.RawMessage `json:"match"`
	Handle []json.RawMessage            `json:"handle"`
}

// findHandlers lists the sms_stepup handlers of the http app in a stable
// order (servers by name, routes in order, subroutes depth first), with the
// host matchers of the routes that lead to them.
func findHandlers(cfgJSON []byte) ([]handlerRef, error) {
	var cfg struct {
		Apps struct {
			HTTP *struct {
				Servers map[string]struct {
					Routes []jsonRoute `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		return nil, fmt.Errorf("read the config: %w", err)
	}
	var refs []handlerRef
	if cfg.Apps.HTTP == nil {
		return nil, errors.New("no http app, so no sms_stepup handler")
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Apps.HTTP.Servers)) {
		if err := walkRoutes(cfg.Apps.HTTP.Servers[name].Routes, name, nil, &refs); err != nil {
			return nil, err
		}
	}
	if len(refs) == 0 {
		return nil, errors.New("no sms_stepup handler in the config")
	}
	return refs, nil
}

func walkRoutes(routes []jsonRoute, server string, hosts []string, refs *[]handlerRef) error {
	for _, rt := range routes {
		routeHosts := hosts
		for _, set := range rt.Match {
			var hs []string
			if raw, ok := set["host"]; ok && json.Unmarshal(raw, &hs) == nil {
				routeHosts = append(append([]string(nil), routeHosts...), hs...)
			}
		}
		for _, raw := range rt.Handle {
			var head struct {
				Handler string      `json:"handler"`
				Routes  []jsonRoute `json:"routes"`
			}
			if err := json.Unmarshal(raw, &head); err != nil {
				return fmt.Errorf("read a handler of server %s: %w", server, err)
			}
			switch head.Handler {
			case "subroute":
				if err := walkRoutes(head.Routes, server, routeHosts, refs); err != nil {
					return err
				}
			case "sms_stepup":
				ref, err := newHandlerRef(raw)
				if err != nil {
					return err
				}
				ref.index, ref.server, ref.hosts = len(*refs), server, routeHosts
				*refs = append(*refs, ref)
			}
		}
	}
	return nil
}

// newHandlerRef reads what the listing shows of a handler, and keeps its
// JSON without the "handler" key, as Caddy passes it to the module.
func newHandlerRef(raw json.RawMessage) (handlerRef, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return handlerRef{}, fmt.Errorf("read an sms_stepup handler: %w", err)
	}
	delete(fields, "handler")
	stripped, err := json.Marshal(fields)
	if err != nil {
		return handlerRef{}, err
	}
	var h struct {
		PathPrefix string `json:"path_prefix"`
		Store      *struct {
			Type      string   `json:"type"`
			URL       string   `json:"url"`
			Addresses []string `json:"addresses"`
		} `json:"store"`
	}
	if err := json.Unmarshal(stripped, &h); err != nil {
		return handlerRef{}, fmt.Errorf("read an sms_stepup handler: %w", err)
	}
	ref := handlerRef{pathPrefix: strings.TrimRight(h.PathPrefix, "/"), storeType: "memory", raw: stripped}
	if ref.pathPrefix == "" {
		ref.pathPrefix = caddymodule.DefaultPathPrefix
	}
	if h.Store != nil && h.Store.Type != "" {
		ref.storeType = h.Store.Type
		ref.storeAddr = strings.Join(h.Store.Addresses, ",")
		if ref.storeAddr == "" {
			ref.storeAddr = redactURL(h.Store.URL)
		}
	}
	return ref, nil
}

// redactURL drops the user and password from a redis:// URL.
func redactURL(raw string) string {
	if at := strings.LastIndex(raw, "@"); at >= 0 {
		if scheme := strings.Index(raw, "://"); scheme >= 0 && scheme < at {
			return raw[:scheme+3] + raw[at+1:]
		}
		return raw[at+1:]
	}
	return raw
}

// pickHandler chooses by --handler, or the only handler there is.
func pickHandler(refs []handlerRef, pick, cfgFile string) (handlerRef, error) {
	if pick == "" {
		if len(refs) == 1 {
			return refs[0], nil
		}
		return handlerRef{}, fmt.Errorf("%s has %d sms_stepup handlers; choose one with --handler <number or path_prefix>:\n%s", cfgFile, len(refs), listHandlers(refs))
	}
	if n, err := strconv.Atoi(pick); err == nil {
		if n < 0 || n >= len(refs) {
			return handlerRef{}, fmt.Errorf("--handler %d: expected a number from 0 to %d:\n%s", n, len(refs)-1, listHandlers(refs))
		}
		return refs[n], nil
	}
	want := strings.TrimRight(pick, "/")
	var found []handlerRef
	for _, r := range refs {
		if r.pathPrefix == want {
			found = append(found, r)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return handlerRef{}, fmt.Errorf("--handler %q: no sms_stepup handler has that path_prefix; expected one of:\n%s", pick, listHandlers(refs))
	}
	return handlerRef{}, fmt.Errorf("--handler %q: %d handlers have that path_prefix; choose one by number:\n%s", pick, len(found), listHandlers(found))
}

func listHandlers(refs []handlerRef) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, r := range refs {
		hosts := "any host"
		if len(r.hosts) > 0 {
			hosts = strings.Join(r.hosts, ",")
		}
		store := r.storeType
		if r.storeAddr != "" {
			store += " " + r.storeAddr
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\tserver %s\tstore %s\n", r.index, r.pathPrefix, hosts, r.server, store)
	}
	tw.Flush()
	return strings.TrimRight(b.String(), "\n")
}

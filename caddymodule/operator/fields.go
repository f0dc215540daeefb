package operator

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// request is what an action is given: the JSON body of its admin route
// (the query of a GET route), or the command line's argument and flags.
type request struct {
	Handler  string `json:"handler,omitempty"`
	Config   string `json:"config,omitempty"`
	Operator string `json:"operator,omitempty"`
	Identity string `json:"identity,omitempty"`
	To       string `json:"to,omitempty"`
	Locale   string `json:"locale,omitempty"`
	// Target is what unblock lifts: a prefix, range or country.
	Target string `json:"target,omitempty"`
	// Locked is how many locked identities status lists.
	Locked *int `json:"locked,omitempty"`
	// Prefix and Since choose the history shown (history.go).
	Prefix string `json:"prefix,omitempty"`
	Since  string `json:"since,omitempty"`
}

// need is whether an action takes a field.
type need int

const (
	refused need = iota
	optional
	required
)

// field is one thing a request may carry, with its checks: the admin API
// and the command line both check a request against the same fields.
type field struct {
	// name is the JSON key and query parameter, and the flag (--name).
	name string
	// meta: every action takes it, and the command line sets it itself
	// (which handler, which config, who acts).
	meta bool
	// positional: the command line takes it as its argument, not a flag.
	positional bool
	// placeholder shows the value in a usage line: <identity>, <number>.
	placeholder string
	// help is the flag's help; about says what it is, when it is missing.
	help, about string
	// example is it as a JSON member, for a message that asks for it.
	example string
	// def is the flag's default.
	def string

	// text points at a text field in a request; get and set read and
	// write any other. set and check return what was expected of a wrong
	// value, or "". check also says how a message shows the value: ""
	// keeps it out (of the log too), as for a phone number.
	text  func(*request) *string
	get   func(request) (value string, given bool)
	set   func(r *request, v string) (want string)
	check func(v string) (shown, want string)
}

// value reads f from r, and whether r carries it.
func (f *field) value(r request) (string, bool) {
	if f.text != nil {
		v := *f.text(&r)
		return v, v != ""
	}
	return f.get(r)
}

// assign sets f in r from text, as a flag or a query parameter gives it.
func (f *field) assign(r *request, v string) (want string) {
	if f.text != nil {
		*f.text(r) = v
		return ""
	}
	return f.set(r, v)
}

// maxLockedListed bounds status's list of locked identities, and
// defaultLockedListed is its length when none is asked for.
const (
	maxLockedListed     = 1000
	defaultLockedListed = 10
)

// fields are all a request may carry, in the order usage lines show them.
var fields = []*field{
	{name: "handler", meta: true, text: func(r *request) *string { return &r.Handler }, check: printable},
	{name: "config", meta: true, text: func(r *request) *string { return &r.Config }, check: printable},
	{name: "operator", meta: true, text: func(r *request) *string { return &r.Operator }, check: printable},
	{
		name: "identity", positional: true, placeholder: "<identity>", example: `"identity": "alice"`,
		text: func(r *request) *string { return &r.Identity }, check: printable,
	},
	{
		name: "target", positional: true, placeholder: "<prefix|country>", example: `"target": "+4477009001"`,
		text: func(r *request) *string { return &r.Target }, check: printable,
	},
	{
		name: "to", placeholder: "<number>", example: `"to": "090-1234-5678"`,
		help:  "The phone `number` (E.164, or national in the handler's default_region)",
		about: "the phone number to send the test message to",
		text:  func(r *request) *string { return &r.To }, check: printable,
	},
	{
		name: "locale", placeholder: strings.Join(otp.Locales, "|"), example: `"locale": "ja"`, def: otp.Locales[0],
		help: "The `language` of the test message: " + strings.Join(otp.Locales, " or "),
		text: func(r *request) *string { return &r.Locale }, check: locale,
	},
	{
		name: "locked", placeholder: "<n>", example: `"locked": 10`, def: strconv.Itoa(defaultLockedListed),
		help: fmt.Sprintf("The `number` of locked identities to list, 0 to %d", maxLockedListed),
		get: func(r request) (string, bool) {
			if r.Locked == nil {
				return "", false
			}
			return strconv.Itoa(*r.Locked), true
		},
		set: func(r *request, v string) string {
			n, err := strconv.Atoi(v)
			if err != nil {
				return "a number"
			}
			r.Locked = &n
			return ""
		},
		check: func(v string) (string, string) {
			if n, _ := strconv.Atoi(v); n < 0 || n > maxLockedListed {
				return v, fmt.Sprintf("0 to %d", maxLockedListed)
			}
			return "", ""
		},
	},
	{
		name: "prefix", placeholder: "<prefix>", example: `"prefix": "+44770090"`,
		help:  "The number `prefix` whose history to show: the E.164 number without its last 4 digits",
		about: "the number prefix",
		text:  func(r *request) *string { return &r.Prefix }, check: printable,
	},
	{
		name: "since", placeholder: "<duration>", example: `"since": "1h"`,
		help: "Show only what happened in the last `duration` (1h, 2d); default: the whole retention",
		text: func(r *request) *string { return &r.Since }, check: sinceDuration,
	},
}

// sinceDuration is a duration back from now, such as 1h or 2d.
func sinceDuration(v string) (shown, want string) {
	if d, err := caddy.ParseDuration(v); err != nil || d <= 0 {
		return strconv.Quote(v), "a duration such as 1h or 2d"
	}
	return "", ""
}

// printable refuses what would garble a log line or an answer. It never
// shows the value: it may be a phone number.
func printable(v string) (shown, want string) {
	if len(v) > 1024 || !utf8.ValidString(v) || strings.IndexFunc(v, unicode.IsControl) >= 0 {
		return "", "printable UTF-8 text of at most 1024 bytes"
	}
	return "", ""
}

func locale(v string) (shown, want string) {
	for _, l := range otp.Locales {
		if v == l {
			return "", ""
		}
	}
	return strconv.Quote(v), strings.Join(otp.Locales, " or ")
}

// query is req as the query of a's GET route.
func (req request) query(a *action) url.Values {
	q := url.Values{}
	for _, f := range a.accepts() {
		if v, given := f.value(req); given {
			q.Set(f.name, v)
		}
	}
	return q
}

// fieldNamed finds the field called name among fs.
func fieldNamed(fs []*field, name string) *field {
	for _, f := range fs {
		if f.name == name {
			return f
		}
	}
	return nil
}

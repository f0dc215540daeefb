package operator

import (
	"fmt"
	"strings"
)

// Checking a request against what an action takes, in the words of the way
// it came in: the admin API speaks of JSON fields, the command line of its
// argument and flags.

// words phrase what is wrong with a request for the way it came in.
type words struct {
	needs   func(a *action, f *field) string
	refuses func(a *action, f *field) string
	// label names a field in a message.
	label func(f *field) string
}

// apiWords speak of JSON fields and query parameters.
var apiWords = words{
	needs: func(a *action, f *field) string {
		return fmt.Sprintf("%s needs %s, e.g. {%s}", a.name, f.name, f.example)
	},
	refuses: func(a *action, f *field) string { return fmt.Sprintf("%s takes no %s", a.name, f.name) },
	label:   func(f *field) string { return f.name },
}

// cliWords speak of the command's argument and flags.
var cliWords = words{
	needs: func(a *action, f *field) string {
		if f.positional {
			return fmt.Sprintf("expected one %s: caddy sms-stepup %s %s", f.name, a.name, f.placeholder)
		}
		return fmt.Sprintf("--%s %s is required: %s", f.name, f.placeholder, f.about)
	},
	refuses: func(a *action, f *field) string { return fmt.Sprintf("%s takes no %s", a.name, flagLabel(f)) },
	label:   flagLabel,
}

// flagLabel names a field as the command line gives it: --to, identity.
func flagLabel(f *field) string {
	if f.positional || f.meta {
		return f.name
	}
	return "--" + f.name
}

// problem says what is wrong with req for a, in w's words, or "".
func (a *action) problem(req request, w words) string {
	for _, f := range fields {
		v, given := f.value(req)
		switch n := a.need(f); {
		case n == required && strings.TrimSpace(v) == "":
			return w.needs(a, f)
		case n == refused && given:
			return w.refuses(a, f)
		case given && f.check != nil:
			if shown, want := f.check(v); want != "" {
				return badValue(w.label(f), shown, want)
			}
		}
	}
	return ""
}

// badValue is the message about a wrong value: `locale "fr": expected en
// or ja`, or with the value kept out, `to: expected printable ...`.
func badValue(label, shown, want string) string {
	if shown != "" {
		label += " " + shown
	}
	return label + ": expected " + want
}

// need is whether a takes f.
func (a *action) need(f *field) need {
	if f.meta {
		return optional
	}
	return a.takes[f.name]
}

// accepts lists the fields a request for a may carry.
func (a *action) accepts() []*field {
	var out []*field
	for _, f := range fields {
		if a.need(f) != refused {
			out = append(out, f)
		}
	}
	return out
}

// exampleBody is a JSON body a takes: its required fields.
func (a *action) exampleBody() string {
	var members []string
	for _, f := range fields {
		if a.need(f) == required {
			members = append(members, f.example)
		}
	}
	return "{" + strings.Join(members, ", ") + "}"
}

// names lists the fields' names: "handler, config, identity", or with
// last "or": "handler, config or identity".
func names(fs []*field, last string) string {
	var ns []string
	for _, f := range fs {
		ns = append(ns, f.name)
	}
	return joinWith(ns, last)
}

// joinWith joins items with commas, the last two with last when it is
// not "" ("a, b or c").
func joinWith(items []string, last string) string {
	if last == "" || len(items) < 2 {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:len(items)-1], ", ") + " " + last + " " + items[len(items)-1]
}

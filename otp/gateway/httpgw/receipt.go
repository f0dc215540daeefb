package httpgw

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// ReceiptConfig says how to read a provider's delivery reports: the
// callbacks it makes to the URL a message gave it as {{.ReceiptURL}}.
type ReceiptConfig struct {
	// Format is how a report carries its fields: "form" (a form body, or
	// the query string of a GET) or "json" (a JSON body).
	Format string
	// Status locates the message's status in a report (required);
	// Reference the provider's message ID and Error its error code
	// (optional, for the log). For a form each is a field name; for JSON
	// a path: the names of nested objects joined by dots ("data.status"),
	// a number picking an array element ("results.0.status").
	Status    string
	Reference string
	Error     string
	// Delivered and Failed list the status values that mean the message
	// reached the phone, and that it never will (both required). Sent
	// lists those that mean it is still on its way (accepted, buffered,
	// with the carrier). Values are compared without regard to case; a
	// report with any other value is refused, so list every value the
	// provider sends.
	Delivered []string
	Failed    []string
	Sent      []string
}

// Receipt formats.
const (
	ReceiptForm = "form"
	ReceiptJSON = "json"
)

// receiptParser reads one provider's delivery reports, as ReceiptConfig
// says.
type receiptParser struct {
	name     string
	json     bool
	status   []string
	ref      []string
	errCode  []string
	statuses map[string]otp.DeliveryStatus
}

func newReceiptParser(name string, cfg ReceiptConfig) (*receiptParser, error) {
	p := &receiptParser{name: name, statuses: map[string]otp.DeliveryStatus{}}
	switch cfg.Format {
	case ReceiptForm:
	case ReceiptJSON:
		p.json = true
	default:
		return nil, fmt.Errorf("http gateway receipt: format %q: expected form or json", cfg.Format)
	}
	var err error
	if cfg.Status == "" {
		return nil, errors.New("http gateway receipt: no status: expected the field (or JSON path) that holds the message's status")
	}
	for _, loc := range []struct {
		opt, text string
		to        *[]string
	}{{"status", cfg.Status, &p.status}, {"reference", cfg.Reference, &p.ref}, {"error", cfg.Error, &p.errCode}} {
		if loc.text == "" {
			continue
		}
		if *loc.to, err = p.locate(loc.text); err != nil {
			return nil, fmt.Errorf("http gateway receipt: %s %q: %w", loc.opt, loc.text, err)
		}
	}
	if len(cfg.Delivered) == 0 || len(cfg.Failed) == 0 {
		return nil, errors.New("http gateway receipt: expected the status values that mean delivered and those that mean failed")
	}
	for _, list := range []struct {
		opt    string
		values []string
		status otp.DeliveryStatus
	}{{"delivered", cfg.Delivered, otp.DeliveryDelivered}, {"failed", cfg.Failed, otp.DeliveryFailed}, {"sent", cfg.Sent, otp.DeliverySent}} {
		for _, v := range list.values {
			key := strings.ToLower(strings.TrimSpace(v))
			if key == "" {
				return nil, fmt.Errorf("http gateway receipt: %s: an empty status value", list.opt)
			}
			if had, dup := p.statuses[key]; dup {
				return nil, fmt.Errorf("http gateway receipt: status value %q is listed as %s and as %s", v, had, list.status)
			}
			p.statuses[key] = list.status
		}
	}
	return p, nil
}

// locate splits a JSON path into its steps; a form field is one step.
func (p *receiptParser) locate(text string) ([]string, error) {
	if !p.json {
		return []string{text}, nil
	}
	steps := strings.Split(text, ".")
	for _, s := range steps {
		if s == "" {
			return nil, errors.New("expected a JSON path such as data.status, without empty steps")
		}
	}
	return steps, nil
}

// ParseReceipt implements otp.ReceiptParser. The report carries no
// signature: the unguessable token in its URL, which the caller checks, is
// what authenticates it.
func (p *receiptParser) ParseReceipt(r *http.Request, _ string) (otp.Receipt, error) {
	lookup, err := p.read(r)
	if err != nil {
		return otp.Receipt{}, fmt.Errorf("http gateway receipt: %w", err)
	}
	value, found, err := lookup(p.status)
	switch {
	case err != nil:
		return otp.Receipt{}, fmt.Errorf("http gateway receipt: status: %w", err)
	case !found:
		return otp.Receipt{}, fmt.Errorf("http gateway receipt: no status at %q", strings.Join(p.status, "."))
	}
	status, ok := p.statuses[strings.ToLower(strings.TrimSpace(value))]
	if !ok {
		return otp.Receipt{}, fmt.Errorf("http gateway receipt: status %s is none of the delivered, failed or sent values", shown(value))
	}
	rep := otp.Receipt{Gateway: p.name, Status: status}
	rep.ID = p.word(lookup, p.ref)
	rep.Error = p.word(lookup, p.errCode)
	return rep, nil
}

// lookupFunc finds the value at a location of one report.
type lookupFunc func(loc []string) (value string, found bool, err error)

// read takes the report's fields from the request.
func (p *receiptParser) read(r *http.Request) (lookupFunc, error) {
	if p.json {
		if r.Method != http.MethodPost && r.Method != http.MethodPut {
			return nil, fmt.Errorf("method %s: expected a JSON body in a POST or PUT", r.Method)
		}
		var doc any
		dec := json.NewDecoder(r.Body)
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil {
			return nil, errors.New("the body is not JSON")
		}
		if _, err := dec.Token(); err != io.EOF {
			return nil, errors.New("the body holds more than one JSON value")
		}
		return func(loc []string) (string, bool, error) { return jsonValue(doc, loc) }, nil
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		return nil, fmt.Errorf("method %s: expected a form in a GET or a POST", r.Method)
	}
	if err := r.ParseForm(); err != nil {
		return nil, errors.New("the form cannot be read")
	}
	return func(loc []string) (string, bool, error) {
		// r.Form holds the body's fields and the query's: a field given in
		// both, or twice, is ambiguous.
		switch values := r.Form[loc[0]]; len(values) {
		case 0:
			return "", false, nil
		case 1:
			return values[0], true, nil
		default:
			return "", false, fmt.Errorf("field %q is given %d times", loc[0], len(values))
		}
	}, nil
}

// jsonValue walks loc down doc to a string, number or boolean.
func jsonValue(doc any, loc []string) (string, bool, error) {
	for _, step := range loc {
		switch node := doc.(type) {
		case map[string]any:
			doc = node[step]
		case []any:
			i, err := strconv.Atoi(step)
			if err != nil || i < 0 || i >= len(node) {
				return "", false, nil
			}
			doc = node[i]
		default:
			return "", false, nil
		}
	}
	switch v := doc.(type) {
	case nil:
		return "", false, nil
	case string:
		return v, true, nil
	case json.Number:
		return v.String(), true, nil
	case bool:
		return strconv.FormatBool(v), true, nil
	}
	return "", false, fmt.Errorf("%q holds an object or an array, expected a value", strings.Join(loc, "."))
}

// word is the value at loc when it looks like a message ID or an error
// code, and "" otherwise. Both go to the log: free text there could hold
// the number, or whatever a caller of the receipt URL chose to put in it.
func (p *receiptParser) word(lookup lookupFunc, loc []string) string {
	if loc == nil {
		return ""
	}
	v, found, err := lookup(loc)
	if err != nil || !found || len(v) > 64 || !isWord(v) {
		return ""
	}
	return v
}

// isWord reports whether s holds only letters, digits and . _ : -, as IDs
// and codes do.
func isWord(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._:-", c)) {
			return false
		}
	}
	return s != ""
}

// shown quotes a status value the parser does not know, for the log, when
// it looks like a status: a short word with few digits, which a phone
// number is not.
func shown(v string) string {
	digits := 0
	for _, c := range v {
		if c >= '0' && c <= '9' {
			digits++
		}
	}
	if len(v) > 24 || !isWord(v) || digits > 6 {
		return "(not shown: not a status word)"
	}
	return strconv.Quote(v)
}

var _ otp.ReceiptParser = (*receiptParser)(nil)

package caddymodule

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

var errNoPhone = errors.New("no phone number for this identity")

// loadPhoneFile reads `identity,phone` lines; blank lines and lines starting
// with # are skipped. Every number must pass the policy: a mistake fails the
// (re)load with the file and line, rather than surfacing on a user's page.
func loadPhoneFile(path string, policy *otp.PhonePolicy) (map[string]otp.Phone, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("phone_file: %w", err)
	}
	defer f.Close()
	phones := make(map[string]otp.Phone)
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		// Excel's "CSV UTF-8" starts the file with a byte-order mark.
		text := strings.TrimSpace(strings.TrimPrefix(sc.Text(), "\ufeff"))
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		identity, raw, ok := strings.Cut(text, ",")
		identity, raw = strings.TrimSpace(identity), strings.TrimSpace(raw)
		if !ok || identity == "" || raw == "" {
			return nil, fmt.Errorf("%s:%d: expected `identity,phone`", path, line)
		}
		if _, dup := phones[identity]; dup {
			return nil, fmt.Errorf("%s:%d: identity %q is listed twice", path, line, identity)
		}
		phone, err := policy.Check(raw)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: phone of %q: %w", path, line, identity, err)
		}
		phones[identity] = phone
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("phone_file %s: %w", path, err)
	}
	return phones, nil
}

// phoneFor finds the number of identity: the phone placeholder first, then
// the phone file, then the phone sources in order (phone_sources.go), then
// (with enroll) the number the identity enrolled.
func (h *Handler) phoneFor(ctx context.Context, identity string, repl *caddy.Replacer) (otp.Phone, error) {
	if h.Phone != "" {
		if raw := repl.ReplaceAll(h.Phone, ""); raw != "" {
			return h.policy.Check(raw)
		}
	}
	if p, ok := h.phones[identity]; ok {
		return p, nil
	}
	if h.sources != nil {
		if p, err := h.sourcePhone(ctx, identity); !errors.Is(err, errNoPhone) {
			return p, err
		}
	}
	if h.Enroll {
		return h.boundPhone(ctx, identity)
	}
	return otp.Phone{}, errNoPhone
}

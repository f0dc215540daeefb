package caddymodule

import (
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// HistoryOptions shape the send history: every send and verification, with
// the number masked, kept in the store for `caddy sms-stepup history`.
type HistoryOptions struct {
	// How long the history keeps an entry, at most 366d. Default: 7d.
	HistoryRetention caddy.Duration `json:"history_retention,omitempty"`
	// Keep no history at all (Caddyfile: history_retention off).
	HistoryOff bool `json:"history_off,omitempty"`
	// The entries kept per identity and per number prefix, the oldest
	// going first, 1 to 100000. Default: 1000.
	HistoryMax int `json:"history_max,omitempty"`
}

// parseHistoryOption reads history_retention <duration|off> or history_max
// <n>; validateHistory says what a value may be.
func (h *Handler) parseHistoryOption(d *caddyfile.Dispenser, opt string) error {
	if opt == "history_max" {
		s, err := oneArg(d)
		if err != nil {
			return err
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return d.Errf("history_max %q: expected a whole number from 1 to %d", s, otp.MaxHistoryPerList)
		}
		h.HistoryMax = n
		return nil
	}
	s, err := oneArg(d)
	if err != nil {
		return err
	}
	if s == "off" {
		h.HistoryOff = true
		return nil
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil || dur <= 0 {
		return d.Errf("history_retention %q: expected a duration such as 7d, at most %s, or off", s, days(otp.MaxHistoryRetention))
	}
	h.HistoryRetention = caddy.Duration(dur)
	return nil
}

// validateHistory checks the history options.
func (h *Handler) validateHistory() error {
	if r := time.Duration(h.HistoryRetention); r < 0 || r > otp.MaxHistoryRetention {
		return optionErrorf("history_retention", "history_retention %s: expected a duration such as 7d, more than 0 and at most %s, or off",
			days(r), days(otp.MaxHistoryRetention))
	}
	if h.HistoryOff && (h.HistoryRetention != 0 || h.HistoryMax != 0) {
		return optionErrorf("history_retention", "history_retention off: expected no history_retention duration and no history_max with it")
	}
	if h.HistoryMax < 0 || h.HistoryMax > otp.MaxHistoryPerList {
		return optionErrorf("history_max", "history_max %d: expected a whole number from 1 to %d", h.HistoryMax, otp.MaxHistoryPerList)
	}
	return nil
}

// historyPolicy is the otp history policy the options make.
func (h *Handler) historyPolicy() otp.HistoryPolicy {
	if h.HistoryOff {
		return otp.HistoryPolicy{}
	}
	p := otp.HistoryPolicy{Retention: otp.DefaultHistoryRetention, MaxPerList: otp.DefaultHistoryMax}
	if h.HistoryRetention != 0 {
		p.Retention = time.Duration(h.HistoryRetention)
	}
	if h.HistoryMax != 0 {
		p.MaxPerList = h.HistoryMax
	}
	return p
}

// days shows a whole number of days as such (7d), else as shortDuration.
func days(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	}
	return shortDuration(d)
}

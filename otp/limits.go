package otp

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"
)

// The names of the send limits, as they appear in LimitCheck.Name,
// LimitResult.Refused, RateLimitError.Limit, logs and metrics.
const (
	LimitPhone       = "phone"
	LimitIdentity    = "identity"
	LimitIP          = "ip"
	LimitDevice      = "device"
	LimitPrefix      = "prefix"
	LimitCountry     = "country"
	LimitDailyBudget = "daily_budget"
)

// LimitCheck is one counter a send must stay under: at most Max sends per
// fixed window of Window for the pair Name and Key.
type LimitCheck struct {
	// Name says what is counted ("phone", "ip", ...): letters, digits and
	// underscores.
	Name string
	// Key says whose sends are counted. The caller hashes it (see
	// Keys.LimitKey): the store must never see a full phone number, an
	// identity or an address, only what it needs to tell them apart.
	Key    string
	Max    int
	Window time.Duration
}

// Bounds returns the window of c that holds now. Windows are fixed and
// aligned to the Unix epoch, so every instance and store agrees on them: an
// hour runs from hh:00 to the next hh:00, and a 24-hour window (the daily
// budget) from 00:00 UTC to the next 00:00 UTC.
func (c LimitCheck) Bounds(now time.Time) (start, end time.Time) {
	w := c.Window.Milliseconds()
	t := now.UnixMilli()
	s := t - ((t%w)+w)%w
	return time.UnixMilli(s).UTC(), time.UnixMilli(s + w).UTC()
}

// LimitRequest asks the store to count one send against every check.
type LimitRequest struct {
	Now    time.Time
	Checks []LimitCheck
}

// Validate reports a check the stores cannot keep.
func (r LimitRequest) Validate() error {
	for _, c := range r.Checks {
		if err := c.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// Validate reports a check the stores cannot keep: a bad name, an empty
// key, a Max below 1 or a window that is not whole milliseconds.
func (c LimitCheck) Validate() error {
	switch {
	case !isLimitName(c.Name):
		return fmt.Errorf("limit name %q: expected 1 to 32 lower-case letters, digits or underscores", c.Name)
	case c.Key == "":
		return fmt.Errorf("limit %s: empty key", c.Name)
	case c.Max < 1:
		return fmt.Errorf("limit %s: max %d, expected at least 1", c.Name, c.Max)
	case c.Window < time.Millisecond || c.Window%time.Millisecond != 0:
		return fmt.Errorf("limit %s: window %s, expected whole milliseconds", c.Name, c.Window)
	}
	return nil
}

func isLimitName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// LimitResult says whether a send was counted.
type LimitResult struct {
	// Allowed is true when every check was under its Max; the send then
	// counts against all of them. When false it counts against none.
	Allowed bool
	// Refused names the first check, in request order, that was at its Max.
	Refused string
	// RetryAt is the end of the refusing check's window.
	RetryAt time.Time
}

// SendLimits are the caps on codes sent that stop SMS pumping (SECURITY.md
// rule 12), kept in the store so that they hold across instances. A zero
// count switches its limit off.
type SendLimits struct {
	// PerPhone, PerIdentity, PerIP and PerPrefix are counted per Window.
	// An IPv6 client counts by its /64, which is what one subscriber gets.
	// The prefix is the number without its last 4 digits, so a pumping
	// run through consecutive numbers of one range is caught.
	PerPhone    int
	PerIdentity int
	PerIP       int
	PerPrefix   int
	// PerDevice is counted per Window for the browser's signed device
	// cookie (a send with none skips it, and counts as a new device).
	PerDevice int
	// PerCountryHour counts per destination region (per calling code for
	// numbers with no region, such as +882), per hour.
	PerCountryHour int
	// DailyBudget caps all sends together per UTC day. Once spent, every
	// send is refused until 00:00 UTC or until an operator resets it
	// (Service.ResetLimit with LimitDailyBudget).
	DailyBudget int
	Window      time.Duration
}

// DefaultSendLimits are generous for people and tight for bots: per hour, 5
// codes to one phone, 10 for one identity, 20 from one client address, 20
// to one number prefix, 500 to one country; and 10,000 codes a day in all.
// The per-device limit is off until set: clients that keep no cookies (most
// scripts) are not counted by it, and those that do, such as load tests
// with limits switched off, would be stopped by a default they never set.
func DefaultSendLimits() SendLimits {
	return SendLimits{
		PerPhone:       5,
		PerIdentity:    10,
		PerIP:          20,
		PerPrefix:      20,
		PerCountryHour: 500,
		DailyBudget:    10000,
		Window:         time.Hour,
	}
}

// Validate reports a negative count or a window outside a minute to a day.
func (l SendLimits) Validate() error {
	for _, v := range []struct {
		name string
		n    int
	}{
		{"per_phone", l.PerPhone}, {"per_identity", l.PerIdentity}, {"per_ip", l.PerIP},
		{"per_prefix", l.PerPrefix}, {"per_device", l.PerDevice}, {"per_country_hour", l.PerCountryHour}, {"daily_budget", l.DailyBudget},
	} {
		if v.n < 0 {
			return fmt.Errorf("send limit %s %d: expected 0 (off) or more", v.name, v.n)
		}
	}
	windowed := l.PerPhone > 0 || l.PerIdentity > 0 || l.PerIP > 0 || l.PerPrefix > 0 || l.PerDevice > 0
	if windowed && (l.Window < time.Minute || l.Window > 24*time.Hour) {
		return fmt.Errorf("send limit window %s: expected a minute to 24 hours", l.Window)
	}
	return nil
}

// Checks returns the checks for one send, in the order the store tries
// them: the narrow limits first and the shared daily budget last, so a send
// that a narrow limit refuses never touches the budget every other send
// needs. Every key is a keyed hash of its value.
func (l SendLimits) Checks(keys *Keys, phone Phone, identity, clientIP string) []LimitCheck {
	return l.ChecksFrom(keys, phone, identity, clientIP, "")
}

// ChecksFrom is Checks with the sending browser's device id as well
// (empty: none, and no per-device check).
func (l SendLimits) ChecksFrom(keys *Keys, phone Phone, identity, clientIP, device string) []LimitCheck {
	out := make([]LimitCheck, 0, 7)
	add := func(name, value string, max int, window time.Duration) {
		if max > 0 {
			out = append(out, LimitCheck{Name: name, Key: keys.LimitKey(name, limitValue(name, value)), Max: max, Window: window})
		}
	}
	add(LimitPhone, phone.E164, l.PerPhone, l.Window)
	add(LimitIdentity, identity, l.PerIdentity, l.Window)
	if clientIP != "" {
		add(LimitIP, clientIP, l.PerIP, l.Window)
	}
	if device != "" {
		add(LimitDevice, device, l.PerDevice, l.Window)
	}
	add(LimitPrefix, numberPrefix(phone.E164), l.PerPrefix, l.Window)
	add(LimitCountry, phoneCountry(phone), l.PerCountryHour, time.Hour)
	add(LimitDailyBudget, "", l.DailyBudget, 24*time.Hour)
	return out
}

// LimitValue is what limit name counts for value, as Checks and
// ResetLimit key it: an IPv6 client by its /64, say.
func LimitValue(name, value string) string { return limitValue(name, value) }

// limitValue normalises what a limit counts, the same way for Checks and
// for an operator's reset.
func limitValue(name, value string) string {
	switch name {
	case LimitIP:
		return ipBucket(value)
	case LimitCountry:
		return strings.ToUpper(strings.TrimSpace(value))
	case LimitDailyBudget:
		return ""
	}
	return strings.TrimSpace(value)
}

// ipBucket is the address a client is counted by: IPv4 as is, IPv6 by its
// /64. What does not parse is counted as given.
func ipBucket(ip string) string {
	ip = strings.TrimSpace(ip)
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		ap, err := netip.ParseAddrPort(ip)
		if err != nil {
			return ip
		}
		addr = ap.Addr()
	}
	addr = addr.Unmap().WithZone("")
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.String()
	}
	return addr.String()
}

// numberPrefix is an E.164 number without its last 4 digits.
func numberPrefix(e164 string) string {
	if n := len(e164) - 4; n > 1 {
		return e164[:n]
	}
	return e164
}

// phoneCountry is the region of a number ("JP", "GG"), or its calling code
// ("+882") where it has none.
func phoneCountry(p Phone) string {
	if p.Region != "" && p.Region != phonenumbers.UNKNOWN_REGION && p.Region != "001" {
		return p.Region
	}
	num, err := phonenumbers.Parse(p.E164, "")
	if err != nil {
		return "unknown"
	}
	if r := phonenumbers.GetRegionCodeForNumber(num); r != "" && r != phonenumbers.UNKNOWN_REGION && r != "001" {
		return r
	}
	return "+" + strconv.Itoa(int(num.GetCountryCode()))
}

// CheckOf is the check that counts value under the limit name (one of
// the per-window limits), as Checks makes it; ok is false when that limit
// is off. Risk judgements read its count (Store.LimitCount).
func (l SendLimits) CheckOf(keys *Keys, name, value string) (c LimitCheck, ok bool) {
	max := map[string]int{LimitPhone: l.PerPhone, LimitIdentity: l.PerIdentity, LimitIP: l.PerIP,
		LimitDevice: l.PerDevice, LimitPrefix: l.PerPrefix}[name]
	if max <= 0 || value == "" {
		return LimitCheck{}, false
	}
	return LimitCheck{Name: name, Key: keys.LimitKey(name, limitValue(name, value)), Max: max, Window: l.Window}, true
}

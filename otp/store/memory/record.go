package memory

import (
	"fmt"
	"math"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// The records below are what the store keeps per identity and per
// challenge. They are compact on purpose (docs/BENCHMARKS.md, "Where the
// memory store's memory goes"): times as int64 Unix nanoseconds rather than
// 24-byte time.Time, the code MAC inline, counters as int32, and an
// identity's challenges in a short slice whose first element is allocated
// with the identity, since an identity almost always has one.

// never is how the zero time.Time is kept: below every other value, as the
// zero time is before every other instant, so comparisons come out the same.
const never = math.MinInt64

var (
	earliest = time.Unix(0, math.MinInt64+1)
	latest   = time.Unix(0, math.MaxInt64)
)

// nanos keeps t as Unix nanoseconds. Instants int64 nanoseconds cannot reach
// (before 1678 or after 2262) are clamped to the ends of the range; a real
// clock's now compares with them as it did with the instant itself.
func nanos(t time.Time) int64 {
	switch {
	case t.IsZero():
		return never
	case t.Before(earliest):
		return math.MinInt64 + 1
	case t.After(latest):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// instant gives a kept time back in loc (the location of the request's now,
// which is where the store's times came from).
func instant(n int64, loc *time.Location) time.Time {
	if n == never {
		return time.Time{}
	}
	return time.Unix(0, n).In(loc)
}

// narrow keeps a count as int32, clamped: a limit past two billion is as
// good as none.
func narrow(n int) int32 {
	switch {
	case n > math.MaxInt32:
		return math.MaxInt32
	case n < math.MinInt32:
		return math.MinInt32
	}
	return int32(n)
}

// inc raises a count, stopping at the top of int32 rather than wrapping.
func inc(n *int32) {
	if *n < math.MaxInt32 {
		*n++
	}
}

// macSize is the longest code MAC the store keeps: an HMAC-SHA256, as
// otp.Keys.CodeMAC makes.
const macSize = 32

// deliveries are the statuses a challenge can hold, by their index in the
// record. Only statuses with a rank are ever stored (SetDelivery keeps a
// status only when it outranks the one held, and the empty one ranks 0).
var deliveries = [...]otp.DeliveryStatus{"", otp.DeliveryQueued, otp.DeliverySent, otp.DeliveryDelivered, otp.DeliveryFailed}

func deliveryIndex(s otp.DeliveryStatus) (uint8, bool) {
	for i, d := range deliveries {
		if d == s {
			return uint8(i), true
		}
	}
	return 0, false
}

// challenge is one live otp.Challenge, less its subject (the identity's key).
type challenge struct {
	id, sessionHash, phoneHash, phoneMasked string
	// historyKey names the history list of the number's prefix
	// (otp.Challenge.HistoryKey); gateway took the latest code
	// (otp.HistoryRecord.Sent).
	historyKey, gateway                 string
	created, sent, expires              int64
	mac                                 [macSize]byte
	attempts, maxAttempts, sends, calls int32
	macLen                              uint8
	delivery                            uint8
}

// setMAC keeps a copy of mac, which the caller has checked is at most
// macSize bytes.
func (c *challenge) setMAC(mac []byte) {
	c.mac = [macSize]byte{}
	c.macLen = uint8(copy(c.mac[:], mac))
}

func checkMAC(mac []byte) error {
	if len(mac) > macSize {
		return fmt.Errorf("memory store: code MAC of %d bytes, expected at most %d (an HMAC-SHA256)", len(mac), macSize)
	}
	return nil
}

// issued is an otp.Challenge with room for its MAC, so a challenge handed
// out is one allocation.
type issued struct {
	c   otp.Challenge
	mac [macSize]byte
}

// export returns a copy of c for the caller, times in loc.
func (c *challenge) export(subject string, loc *time.Location) *otp.Challenge {
	out := &issued{c: otp.Challenge{
		ID:          c.id,
		Subject:     subject,
		SessionHash: c.sessionHash,
		PhoneHash:   c.phoneHash,
		PhoneMasked: c.phoneMasked,
		CreatedAt:   instant(c.created, loc),
		SentAt:      instant(c.sent, loc),
		ExpiresAt:   instant(c.expires, loc),
		Sends:       int(c.sends),
		Attempts:    int(c.attempts),
		MaxAttempts: int(c.maxAttempts),
		Calls:       int(c.calls),
		Delivery:    deliveries[c.delivery],
		HistoryKey:  c.historyKey,
	}}
	if c.macLen > 0 {
		out.mac = c.mac
		out.c.CodeMAC = out.mac[:c.macLen:c.macLen]
	}
	return &out.c
}

func (c *challenge) remaining() int {
	if r := c.maxAttempts - c.attempts; r > 0 {
		return int(r)
	}
	return 0
}

// identity is what the store knows of one subject: its failure and send
// counters (a time of never when unset) and its live challenges.
type identity struct {
	failures    int32
	sends       int32
	failExpires int64
	lockedUntil int64
	sendExpires int64
	nextSendAt  int64
	challenges  []challenge
}

// newIdentity returns an identity with room for one challenge in the same
// allocation.
func newIdentity() *identity {
	both := &struct {
		id    identity
		first [1]challenge
	}{}
	both.id.challenges = both.first[:0]
	both.id.resetFailures()
	both.id.resetSends()
	return &both.id
}

func (id *identity) resetFailures() {
	id.failures, id.failExpires, id.lockedUntil = 0, never, never
}

func (id *identity) resetSends() {
	id.sends, id.sendExpires, id.nextSendAt = 0, never, never
}

// find returns the index of the challenge cid, or -1.
func (id *identity) find(cid string) int {
	for i := range id.challenges {
		if id.challenges[i].id == cid {
			return i
		}
	}
	return -1
}

// remove drops the i-th challenge. The order of challenges means nothing.
func (id *identity) remove(i int) {
	last := len(id.challenges) - 1
	id.challenges[i] = id.challenges[last]
	id.challenges[last] = challenge{} // let go of its strings
	id.challenges = id.challenges[:last]
}

// expire forgets counters and challenges whose time has passed at now.
func (id *identity) expire(now int64) {
	if now >= id.failExpires {
		id.resetFailures()
	}
	if now >= id.sendExpires {
		id.resetSends()
	}
	for i := 0; i < len(id.challenges); {
		if now >= id.challenges[i].expires {
			id.remove(i)
			continue
		}
		i++
	}
}

// revoke drops the challenges created before notBefore.
func (id *identity) revoke(notBefore int64) {
	for i := 0; i < len(id.challenges); {
		if id.challenges[i].created < notBefore {
			id.remove(i)
			continue
		}
		i++
	}
}

func (id *identity) empty(now int64) bool {
	return len(id.challenges) == 0 && id.failures == 0 && id.sends == 0 && now >= id.lockedUntil
}

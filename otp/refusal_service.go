package otp

import "errors"

// The service's side of the refusal memo (refusal_memo.go): what a send
// counts on, the refusals held for it, and the store's refusals noted.

// sendCounters are the counters one send is checked against: its send
// limits, in the store's order, and its breaker scopes (nil when the
// breaker is off).
type sendCounters struct {
	limits []LimitCheck
	scopes []string
}

func (s *Service) countersOf(req SendRequest) sendCounters {
	c := sendCounters{limits: s.cfg.Limits.ChecksFrom(s.keys, req.Phone, req.Subject, req.ClientIP, req.Device)}
	if s.breaker != nil {
		c.scopes = s.cfg.Breaker.Scopes(req.Phone)
	}
	return c
}

// heldRefusal is the store's refusal of one of c's counters that this
// instance still holds (nil: none, ask the store).
func (s *Service) heldRefusal(c sendCounters) error {
	return s.refusals.held(c.scopes, c.limits, s.clock.Now())
}

// noteRefusal holds the store's refusal of a send by a limit or a block
// (err, as the store returned it), for the counter it names among c's.
// Anything else (a cooldown, a lock-out, an outage) is not held.
func (s *Service) noteRefusal(c sendCounters, err error) {
	now := s.clock.Now()
	if limited, ok := errors.AsType[*RateLimitError](err); ok {
		for _, check := range c.limits {
			if check.Name == limited.Limit {
				s.refusals.remember(limitRefusal(check), limited.RetryAt, now)
				return
			}
		}
		return
	}
	if blocked, ok := errors.AsType[*BlockedError](err); ok {
		s.refusals.remember(scopeRefusal(blocked.Scope), blocked.Until, now)
	}
}

// HeldSendRefusal is the store's refusal that this instance holds for one
// of req's counters (nil: none): what Send would answer without a store
// step. A caller may ask before a costly step of its own that a refused
// send does not need, such as a paid carrier look-up.
func (s *Service) HeldSendRefusal(req SendRequest) error {
	if s.refusals.empty() {
		return nil // no key to hash
	}
	return s.heldRefusal(s.countersOf(req))
}

// HeldAddressRefusal is the store's refusal of sends from clientIP by the
// address limit, as this instance holds it (false: none), without the
// number: a caller may answer a send with it before reading the number,
// since every send from the address is checked against that limit.
func (s *Service) HeldAddressRefusal(clientIP string) (*RateLimitError, bool) {
	if s.refusals.empty() {
		return nil, false // no address's key to hash
	}
	check, ok := s.cfg.Limits.CheckOf(s.keys, LimitIP, clientIP)
	if !ok {
		return nil, false
	}
	limited, ok := s.refusals.held(nil, []LimitCheck{check}, s.clock.Now()).(*RateLimitError)
	return limited, ok
}

package main

import (
	"fmt"
	"net/url"
)

// burstResult is what -burst reports: real users of one range (+81 80 77,
// each in a prefix of its own) who all ask for a code before any of them
// types theirs, as at the start of a working day in a large company.
type burstResult struct {
	Guard     string `json:"fraud_guard"`
	Users     int    `json:"burst_users"`
	Sent      int    `json:"codes_sent"`
	Refused   int    `json:"sends_refused"`
	Completed int    `json:"completed"`
}

func burstNumber(i int) string { return fmt.Sprintf("+818077%02d%04d", i%100, 1000+i) }

// runBurst has n users of one range ask for a code, then each type it; a
// user refused first asks again after all others verified.
func (s *sim) runBurst(n int) (burstResult, error) {
	res := burstResult{Guard: s.guard, Users: n}
	stop, err := s.start()
	if err != nil {
		return res, err
	}
	defer stop()
	clients := make([]*client, n)
	forms := make([]url.Values, n)
	for i := range n {
		clients[i] = s.client(fmt.Sprintf("burst-%d", i), burstNumber(i), fmt.Sprintf("203.0.113.%d", 1+i%250))
		if forms[i], err = clients[i].stepUpPage(); err != nil {
			return res, err
		}
		status, _, err := clients[i].post("/_stepup/send", forms[i], "")
		if err != nil {
			return res, err
		}
		if status == 303 {
			res.Sent++
		} else {
			res.Refused++
			clients[i] = nil
		}
	}
	for i, c := range clients {
		if c != nil && s.verify(c, burstNumber(i)) == nil {
			res.Completed++
		}
	}
	return res, nil
}

// verify types the newest code sent to number.
func (s *sim) verify(c *client, number string) error {
	code, err := s.codeFor(number)
	if err != nil {
		return err
	}
	f, err := c.stepUpPage()
	if err != nil {
		return err
	}
	if status, loc, err := c.post("/_stepup/verify", f, code); err != nil || status != 303 || loc != "/settings" {
		return fmt.Errorf("verify: %d %q %v", status, loc, err)
	}
	return nil
}

package operator

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// rfc3339Milli is how not-befores are shown: stores keep milliseconds.
const rfc3339Milli = "2006-01-02T15:04:05.000Z07:00"

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (st operatorStatus) text(w io.Writer, _ time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "handler\t%s\n", st.Handler)
	reach := "reachable"
	if !st.Store.Reachable {
		reach = "UNREACHABLE: " + st.Store.Error
	}
	fmt.Fprintf(tw, "store\t%s %s: %s\n", st.Store.Type, st.Store.Address, reach)
	switch b := st.Budget; {
	case b == nil:
		fmt.Fprintf(tw, "daily budget\tunknown\n")
	case b.Max == 0:
		fmt.Fprintf(tw, "daily budget\tnone configured\n")
	default:
		fmt.Fprintf(tw, "daily budget\t%d used, %d left of %d; resets %s (in %s)\n", b.Used, b.Left, b.Max,
			b.ResetAt.Format(time.RFC3339), roughly(b.ResetAt.Sub(st.Time)))
	}
	if l := st.Locked; l == nil {
		fmt.Fprintf(tw, "locked\tunknown\n")
	} else {
		noun := "identities"
		if l.Total == 1 {
			noun = "identity"
		}
		fmt.Fprintf(tw, "locked\t%d %s locked out\n", l.Total, noun)
		for _, id := range l.First {
			until := "until " + id.Until.Format(time.RFC3339)
			if id.UntilUnlocked {
				until = "until unlocked (caddy sms-stepup unlock " + id.Identity + ")"
			}
			fmt.Fprintf(tw, "\t  %s\t%d wrong codes, %s\n", id.Identity, id.Failures, until)
		}
		if l.Total > len(l.First) {
			fmt.Fprintf(tw, "\t  ... and %d more (--locked N lists more)\n", l.Total-len(l.First))
		}
	}
	st.FraudGuard.text(tw, st.Time)
	printHealth(tw, "gateway", st.Gateway)
	for _, s := range st.PhoneSources {
		line := fmt.Sprintf("phone source\t%s (%s): %s", s.Source, s.Type, s.Status)
		if s.Error != "" {
			line += " (" + s.Error + ")"
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
}

// roughly is a duration for people: "18h42m", "4m30s", "12s".
func roughly(d time.Duration) string {
	if d >= time.Hour {
		d = d.Round(time.Minute)
	} else {
		d = d.Round(time.Second)
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	return s
}

func printHealth(w io.Writer, label string, h otp.GatewayHealth) {
	line := fmt.Sprintf("%s\t%s: %s", label, h.Gateway, h.Status)
	if h.Error != "" {
		line += " (" + h.Error + ")"
	}
	fmt.Fprintln(w, line)
	for _, m := range h.Members {
		printHealth(w, "\t  ", m)
	}
}

func (st identityStatus) text(w io.Writer, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	when := func(t *time.Time, none string) string {
		if t == nil {
			return none
		}
		return t.Format(time.RFC3339) + " (in " + roughly(t.Sub(now)) + ")"
	}
	fmt.Fprintf(tw, "identity\t%s\n", st.Identity)
	fmt.Fprintf(tw, "wrong codes\t%d in a row\n", st.Failures)
	if st.UntilUnlocked {
		fmt.Fprintf(tw, "locked until\t%s\n", "an operator unlocks it (caddy sms-stepup unlock)")
	} else {
		fmt.Fprintf(tw, "locked until\t%s\n", when(st.LockedUntil, "not locked"))
	}
	fmt.Fprintf(tw, "codes sent\t%d recently\n", st.Sends)
	fmt.Fprintf(tw, "next code\t%s\n", when(st.NextSendAt, "now"))
	phone := st.PhoneSource
	if st.Phone != "" {
		phone = st.Phone + " (" + st.PhoneSource + ")"
	}
	fmt.Fprintf(tw, "phone\t%s\n", phone)
	nb := "none"
	if st.NotBefore != nil {
		nb = st.NotBefore.Format(rfc3339Milli) + ": step-ups before it do not pass"
	}
	fmt.Fprintf(tw, "not before\t%s\n", nb)
	tw.Flush()
}

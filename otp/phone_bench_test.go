package otp_test

import (
	"fmt"
	"testing"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// BenchmarkPhoneCheck is the policy check of a number not seen before:
// what each new user's step-up page pays once (issue 17; the handler
// remembers the answer for the send that follows).
//
//	go test -run XXX -bench PhoneCheck -benchmem ./otp/
func BenchmarkPhoneCheck(b *testing.B) {
	p, err := otp.NewPhonePolicy(otp.PhonePolicyConfig{})
	if err != nil {
		b.Fatal(err)
	}
	numbers := make([]string, 1000)
	for i := range numbers {
		numbers[i] = fmt.Sprintf("+81901%07d", i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := p.Check(numbers[i%len(numbers)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

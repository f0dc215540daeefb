package otp_test

import (
	"context"
	"errors"
	"testing"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

type healthGateway struct{ err error }

func (g healthGateway) Health(context.Context) error { return g.err }

type chainGateway struct{ members []otp.GatewayHealth }

func (g chainGateway) HealthReport(context.Context) []otp.GatewayHealth { return g.members }

func TestCheckHealth(t *testing.T) {
	t.Parallel()
	ok := otp.GatewayHealth{Gateway: "a", Status: otp.HealthOK}
	down := otp.GatewayHealth{Gateway: "b", Status: otp.HealthDown, Error: "unreachable"}
	unknown := otp.GatewayHealth{Gateway: "c", Status: otp.HealthUnknown}
	cases := []struct {
		name    string
		gw      any
		want    otp.HealthStatus
		wantErr string
	}{
		{"a gateway whose check passes is ok", healthGateway{}, otp.HealthOK, ""},
		{"a gateway whose check fails is down, with the reason", healthGateway{errors.New("auth refused")}, otp.HealthDown, "auth refused"},
		{"a gateway that says it cannot tell is unknown", healthGateway{otp.ErrHealthUnknown}, otp.HealthUnknown, otp.ErrHealthUnknown.Error()},
		{"a gateway with no check is unknown", &recordingGateway{}, otp.HealthUnknown, otp.ErrHealthUnknown.Error()},
		{"a chain with one member ok is ok", chainGateway{[]otp.GatewayHealth{down, ok}}, otp.HealthOK, ""},
		{"a chain with every member down is down", chainGateway{[]otp.GatewayHealth{down, down}}, otp.HealthDown, ""},
		{"a chain with members down and unknown is unknown", chainGateway{[]otp.GatewayHealth{down, unknown}}, otp.HealthUnknown, ""},
		{"an empty chain is unknown", chainGateway{}, otp.HealthUnknown, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := otp.CheckHealth(t.Context(), "gw", tc.gw)
			if got.Gateway != "gw" || got.Status != tc.want || got.Error != tc.wantErr {
				t.Fatalf("got %+v, want status %s error %q", got, tc.want, tc.wantErr)
			}
			if c, ok := tc.gw.(chainGateway); ok && len(got.Members) != len(c.members) {
				t.Fatalf("members %+v, want each member reported", got.Members)
			}
		})
	}
}

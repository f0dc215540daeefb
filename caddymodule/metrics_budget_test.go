package caddymodule

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

// budgetGauge reads caddy_sms_stepup_daily_budget_remaining as the
// handler's /metrics would show it; false when it is absent.
func budgetGauge(t *testing.T, e *htEnv) (float64, bool) {
	t.Helper()
	families, err := e.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "caddy_sms_stepup_daily_budget_remaining" {
			if len(f.GetMetric()) != 1 {
				t.Fatalf("%d samples of daily_budget_remaining, want 1", len(f.GetMetric()))
			}
			return f.GetMetric()[0].GetGauge().GetValue(), true
		}
	}
	return 0, false
}

func wantBudgetGauge(t *testing.T, e *htEnv, what string, want float64) {
	t.Helper()
	got, ok := budgetGauge(t, e)
	if !ok || got != want {
		t.Fatalf("%s: daily_budget_remaining %v (present: %v), want %v", what, got, ok, want)
	}
}

func budgetEnv(t *testing.T, budget int) *htEnv {
	return htNew(t, nil, func(h *Handler) { h.Limits = &LimitsConfig{DailyBudget: &budget} })
}

// TestDailyBudgetRemainingMetric: the gauge says what today's budget has
// left, as the store counts it, after sends, an operator's reset and
// midnight UTC.
func TestDailyBudgetRemainingMetric(t *testing.T) {
	t.Parallel()
	t.Run("under the default budget of 10000 it counts down from 10000 as codes are sent", func(t *testing.T) {
		t.Parallel()
		e := htNew(t, nil, nil)
		wantBudgetGauge(t, e, "before any send", 10000)
		e.browser("budget-a").send()
		wantBudgetGauge(t, e, "after one code", 9999)
	})
	t.Run("a spent budget reports 0 until reset-budget gives it back", func(t *testing.T) {
		t.Parallel()
		e := budgetEnv(t, 2)
		e.browser("budget-a").send()
		e.browser("budget-b").send()
		wantBudgetGauge(t, e, "with the budget spent", 0)
		if w, body := e.browser("budget-c").postSend(); w.Code != http.StatusTooManyRequests {
			t.Fatalf("a send over the budget: %d\n%s", w.Code, body)
		}
		wantBudgetGauge(t, e, "after a refused send", 0)
		if err := e.h.service.ResetLimit(context.Background(), otp.LimitDailyBudget, ""); err != nil {
			t.Fatal(err)
		}
		wantBudgetGauge(t, e, "after reset-budget", 2)
	})
	t.Run("at midnight UTC the new day's budget is reported whole", func(t *testing.T) {
		t.Parallel()
		e := budgetEnv(t, 2)
		e.browser("budget-a").send()
		midnight := e.clock.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
		e.clock.Set(midnight.Add(-time.Second))
		wantBudgetGauge(t, e, "a second before midnight UTC", 1)
		e.clock.Set(midnight)
		wantBudgetGauge(t, e, "at midnight UTC", 2)
	})
	t.Run("with no daily budget it reports -1", func(t *testing.T) {
		t.Parallel()
		wantBudgetGauge(t, budgetEnv(t, 0), "daily_budget 0", -1)
	})
}

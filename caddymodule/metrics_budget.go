package caddymodule

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// The gauge caddy_sms_stepup_daily_budget_remaining is read from the store
// at each scrape rather than kept in memory: the budget is counted in the
// store, shared by every instance, and changed from outside this process
// (`caddy sms-stepup reset-budget` runs on its own handler) and by the clock
// (it refills at midnight UTC). A value kept here would drift from all
// three.

var budgetDesc = prometheus.NewDesc("caddy_sms_stepup_daily_budget_remaining",
	"Sends left in today's global budget (UTC day), read from the store at each scrape; -1 when no budget is configured. "+
		"With several sms_stepup handlers, the least any of them has left. Absent while a store can't be read.", nil, nil)

// budgetReadTimeout bounds the store reads of one scrape.
const budgetReadTimeout = 2 * time.Second

// budgetCollector reports the gauge for the handlers of one config (one
// metrics registry).
type budgetCollector struct {
	mu       sync.Mutex
	handlers []*Handler
}

// watchBudget adds h to the gauge of its config's registry, until the
// config unloads. h must be fully provisioned.
func watchBudget(ctx caddy.Context, h *Handler) error {
	c := new(budgetCollector)
	if err := ctx.GetMetricsRegistry().Register(c); err != nil {
		// Several handlers in one config share the collector.
		var already prometheus.AlreadyRegisteredError
		if !errors.As(err, &already) {
			return err
		}
		if c, _ = already.ExistingCollector.(*budgetCollector); c == nil {
			return err
		}
	}
	c.mu.Lock()
	c.handlers = append(c.handlers, h)
	c.mu.Unlock()
	if ctx.Context != nil && ctx.Done() != nil {
		context.AfterFunc(ctx, func() { c.remove(h) })
	}
	return nil
}

func (c *budgetCollector) remove(h *Handler) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.handlers = slices.DeleteFunc(c.handlers, func(x *Handler) bool { return x == h })
}

// Describe implements prometheus.Collector.
func (c *budgetCollector) Describe(ch chan<- *prometheus.Desc) { ch <- budgetDesc }

// Collect implements prometheus.Collector.
func (c *budgetCollector) Collect(ch chan<- prometheus.Metric) {
	if left, ok := c.left(); ok {
		ch <- prometheus.MustNewConstMetric(budgetDesc, prometheus.GaugeValue, float64(left))
	}
}

// left is the least budget any handler has left today (-1 when none has a
// budget); false when there are no handlers or a store can't be read,
// since a guess could raise or silence the alert on a spent budget.
func (c *budgetCollector) left() (int, bool) {
	c.mu.Lock()
	handlers := slices.Clone(c.handlers)
	c.mu.Unlock()
	if len(handlers) == 0 {
		return 0, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), budgetReadTimeout)
	defer cancel()
	least := -1
	for _, h := range handlers {
		b, err := h.service.DailyBudget(ctx)
		if err != nil {
			return 0, false
		}
		if b.Max > 0 && (least < 0 || b.Left() < least) {
			least = b.Left()
		}
	}
	return least, true
}

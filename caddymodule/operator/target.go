package operator

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

// target is where the actions run: on the handler provisioned here from
// the config (store redis: the store is shared, so acting here acts for
// every instance), or, for the memory store, which only the running Caddy
// holds, in that Caddy through its admin API (admin.go). Both run the same
// action and give the same results and errors.
type target struct {
	local  *actor
	remote *adminClient
}

func (t target) run(ctx context.Context, a *action, req request) (result, error) {
	if t.remote != nil {
		return t.remote.call(ctx, a, req)
	}
	return t.local.perform(ctx, a, req)
}

// now is the clock a status is read against.
func (t target) now() time.Time {
	if t.local != nil {
		return t.local.h.Now()
	}
	return time.Now()
}

// withTarget loads the config, picks the handler, and runs fn within
// --timeout: on the handler provisioned here as the server would (and
// cleaned up after), or, with the memory store, through the running
// Caddy's admin API. Errors come back as one line for cobra to print, and
// a non-zero exit.
func withTarget(c *cobra.Command, fn func(ctx context.Context, t target) error) error {
	flags := c.Flags()
	configFile, _ := flags.GetString("config")
	adapter, _ := flags.GetString("adapter")
	pick, _ := flags.GetString("handler")
	address, _ := flags.GetString("address")
	timeout, _ := flags.GetDuration("timeout")
	if timeout <= 0 {
		return fmt.Errorf("--timeout %s: expected a positive duration such as 10s", timeout)
	}
	ctx, cancel := context.WithTimeout(c.Context(), timeout)
	defer cancel()

	cfgJSON, cfgFile, err := loadOperatorConfig(configFile, adapter)
	if err != nil {
		return err
	}
	refs, err := findHandlers(cfgJSON)
	if err != nil {
		return fmt.Errorf("%s: %w", cfgFile, err)
	}
	ref, err := pickHandler(refs, pick, cfgFile)
	if err != nil {
		return err
	}
	if ref.storeType == "memory" {
		client, err := newAdminClient(cfgJSON, cfgFile, address, ref, timeout, c.ErrOrStderr())
		if err != nil {
			return err
		}
		return fn(ctx, target{remote: client})
	}
	op, cleanup, err := provisionOperator(ctx, cfgJSON, ref)
	if err != nil {
		return err
	}
	defer cleanup()
	if err := fn(ctx, target{local: op}); err != nil {
		return explainStoreError(err, op.h, timeout)
	}
	return nil
}

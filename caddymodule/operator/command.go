package operator

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:      "sms-stepup",
		Usage:     "<command> [--config <path>] [--adapter <name>] [--handler <n|path_prefix>]",
		Short:     operatorShort,
		Long:      operatorLong,
		CobraFunc: Commands,
	})
}

const operatorShort = "Operator commands for the sms_stepup handler: unlock, revoke, status, send-test ..."

const operatorLong = `
Operator commands for the sms_stepup handler. They read the same config as
the server (--config, or the Caddyfile in the current directory, as 'caddy
run' does), set up the handler exactly as the server does (store, gateway,
signing key, limits), and act on its store, so a change takes effect on every
Caddy instance that shares it. (An instance repeats the store's refusal of a
send by a limit or a fraud guard block for at most 10 seconds without asking
the store: an unblock or a limit reset reaches the sends it holds within
that time, at once on the instance that runs it.)

With 'store redis' they act on the store from here, whether or not Caddy
is running. With the memory store, which lives inside the running Caddy,
they ask that Caddy through its admin endpoint (the config's admin listen
address, else localhost:2019, or --address), as 'caddy reload' does, and
its handler with the same path_prefix acts. Run them with the server's
environment (the variables its {env.*} placeholders read) and as the user
whose Caddy storage holds a generated signing key, if the config sets none.

Every command that changes something writes one audit entry (logger
sms_stepup.operator, event operator_<command>) with the identity and the
operator ($USER) to Caddy's log as the config sets it up (the running
Caddy's log, with via admin_api, for the memory store); never a code or a
full phone number.
`

// Commands adds the subcommands of `caddy sms-stepup` to cmd: one for each
// action of the table, and keygen.
func Commands(cmd *cobra.Command) {
	cmd.Example = `  caddy sms-stepup status --config /etc/caddy/Caddyfile
  caddy sms-stepup unlock alice
  caddy sms-stepup send-test --to 090-1234-5678 --handler /_stepup`
	pf := cmd.PersistentFlags()
	pf.StringP("config", "c", "", "Configuration file (default: the Caddyfile in the current directory)")
	pf.StringP("adapter", "a", "", "Name of config adapter to apply")
	pf.String("handler", "", "Which sms_stepup handler, by its number in the list or its path_prefix, when the config has several")
	pf.Duration("timeout", 10*time.Second, "How long the command may take in all; each store command is bounded by the store's command_timeout too")
	pf.String("address", "", "With the memory store: the running Caddy's admin endpoint (default: the config's admin listen address, else localhost:2019)")
	for _, a := range actions {
		cmd.AddCommand(a.command())
	}
	cmd.AddCommand(keygenCommand())
}

// command is the action's subcommand: its argument and flags are the
// fields it takes.
func (a *action) command() *cobra.Command {
	c := &cobra.Command{Use: a.usage(), Short: a.short, Long: a.long, Example: a.example, Args: a.positionalArgs(), RunE: a.runCommand}
	for _, f := range a.accepts() {
		if !f.meta && !f.positional {
			c.Flags().String(f.name, f.def, f.help)
		}
	}
	c.Flags().Bool("json", false, "Print the result as JSON, as the admin API answers it, for scripts")
	return c
}

// usage is the subcommand's usage line: "send-test --to <number> [--locale
// en|ja]".
func (a *action) usage() string {
	words := []string{a.name}
	for _, f := range a.accepts() {
		if f.meta {
			continue
		}
		w := f.placeholder
		if !f.positional {
			w = "--" + f.name + " " + w
		}
		if a.need(f) == optional {
			w = "[" + w + "]"
		}
		words = append(words, w)
	}
	return strings.Join(words, " ")
}

// positionalArgs checks the command line's argument: the identity, for the
// actions that take one.
func (a *action) positionalArgs() cobra.PositionalArgs {
	var arg *field
	for _, f := range a.accepts() {
		if f.positional {
			arg = f
		}
	}
	if arg == nil {
		return cobra.NoArgs
	}
	return func(_ *cobra.Command, args []string) error {
		blank := len(args) == 1 && strings.TrimSpace(args[0]) == ""
		switch {
		case a.need(arg) == required && (len(args) != 1 || blank):
			return errors.New(cliWords.needs(a, arg))
		case len(args) > 1 || blank:
			return fmt.Errorf("expected at most one %s: caddy sms-stepup %s [%s]", arg.name, a.name, arg.placeholder)
		}
		return nil
	}
}

// commandRequest is the request the command line gives: the argument and
// the flags, checked as the admin API checks a request.
func (a *action) commandRequest(c *cobra.Command, args []string) (request, error) {
	var req request
	for _, f := range a.accepts() {
		var v string
		switch {
		case f.meta:
			continue
		case f.positional:
			if len(args) == 0 {
				continue
			}
			v = args[0]
		default:
			v, _ = c.Flags().GetString(f.name)
			if v == "" {
				continue
			}
		}
		if want := f.assign(&req, v); want != "" {
			return req, errors.New(badValue(flagLabel(f), strconv.Quote(v), want))
		}
	}
	if msg := a.problem(req, cliWords); msg != "" {
		return req, errors.New(msg)
	}
	return req, nil
}

// runCommand runs the action from the command line and prints its result:
// as text, or with --json as the admin API answers it. A status that
// reports its own failure (a store that can't be read) is printed, and the
// command still fails.
func (a *action) runCommand(c *cobra.Command, args []string) error {
	c.SilenceUsage = true
	req, err := a.commandRequest(c, args)
	if err != nil {
		return err
	}
	asJSON, _ := c.Flags().GetBool("json")
	return withTarget(c, func(ctx context.Context, t target) error {
		res, err := t.run(ctx, a, req)
		own, selfReported := res.(selfReporting)
		if res == nil || (err != nil && !selfReported) {
			return err
		}
		if err == nil && selfReported {
			err = own.failure()
		}
		if asJSON {
			if werr := printJSON(c.OutOrStdout(), res); werr != nil {
				return werr
			}
		} else {
			res.text(c.OutOrStdout(), t.now())
		}
		return err
	})
}

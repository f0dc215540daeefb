package caddymodule

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/caddyserver/certmagic"
	"github.com/spf13/cobra"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/otp"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:      "sms-stepup",
		Usage:     "<command> [--config <path>] [--adapter <name>] [--handler <n|path_prefix>]",
		Short:     operatorShort,
		Long:      operatorLong,
		CobraFunc: operatorCommands,
	})
}

const operatorShort = "Operator commands for the sms_stepup handler: unlock, revoke, status, send-test ..."

const operatorLong = `
Operator commands for the sms_stepup handler. They read the same config as
the server (--config, or the Caddyfile in the current directory, as 'caddy
run' does), set up the handler exactly as the server does (store, gateway,
signing key, limits), and act on its store, so a change takes effect on every
Caddy instance that shares it.

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

// operatorCommands adds the subcommands of `caddy sms-stepup` to cmd.
func operatorCommands(cmd *cobra.Command) {
	cmd.Example = `  caddy sms-stepup status --config /etc/caddy/Caddyfile
  caddy sms-stepup unlock alice
  caddy sms-stepup send-test --to 090-1234-5678 --handler /_stepup`
	pf := cmd.PersistentFlags()
	pf.StringP("config", "c", "", "Configuration file (default: the Caddyfile in the current directory)")
	pf.StringP("adapter", "a", "", "Name of config adapter to apply")
	pf.String("handler", "", "Which sms_stepup handler, by its number in the list or its path_prefix, when the config has several")
	pf.Duration("timeout", 10*time.Second, "How long the command may take in all; each store command is bounded by the store's command_timeout too")
	pf.String("address", "", "With the memory store: the running Caddy's admin endpoint (default: the config's admin listen address, else localhost:2019)")

	cmd.AddCommand(&cobra.Command{
		Use:   "unlock <identity>",
		Short: "Forgets an identity's wrong codes and lock-out",
		Long: `
Forgets the identity's consecutive wrong codes and ends its lock-out at once,
on every instance sharing the store. Send counts, cooldowns and send limits
stay as they are.`,
		Example: "  caddy sms-stepup unlock alice",
		Args:    identityArg,
		RunE: withOperator(func(ctx context.Context, c *cobra.Command, t operatorTarget, args []string) error {
			res, err := runOperation[unlockResult](ctx, t, "unlock", adminRequest{Identity: args[0]})
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "unlocked %s: wrong-code count and lock-out cleared\n", res.Identity)
			return nil
		}),
	})

	cmd.AddCommand(&cobra.Command{
		Use:   "revoke <identity>",
		Short: "Ends an identity's step-ups: its cookies stop passing",
		Long: `
Sets the identity's "not before" to now: step-up tokens (cookies) it got
before stop passing, and its codes in flight stop working. Each Caddy
instance sharing the store sees the revocation within its revocation refresh
interval (10s by default), this one at once; the user steps up again with a
new code.`,
		Example: "  caddy sms-stepup revoke alice",
		Args:    identityArg,
		RunE: withOperator(func(ctx context.Context, c *cobra.Command, t operatorTarget, args []string) error {
			res, err := runOperation[revokeResult](ctx, t, "revoke", adminRequest{Identity: args[0]})
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "revoked %s: step-ups authenticated before %s no longer pass; every instance sharing the store applies it within %s\n",
				res.Identity, res.NotBefore.UTC().Format(rfc3339Milli), res.RevocationRefresh)
			return nil
		}),
	})

	cmd.AddCommand(&cobra.Command{
		Use:   "reset-number <identity>",
		Short: "Unbinds an identity's enrolled phone number",
		Long: `
Removes the phone number the identity enrolled (with the handler's enroll
option), so that its next step-up enrols a number afresh: the operator's
reset for a user who lost their phone. It prints the old number masked.
Numbers from phone_file or the phone placeholder are not in the store: change
them where they come from.`,
		Example: "  caddy sms-stepup reset-number alice",
		Args:    identityArg,
		RunE: withOperator(func(ctx context.Context, c *cobra.Command, t operatorTarget, args []string) error {
			res, err := runOperation[resetNumberResult](ctx, t, "reset-number", adminRequest{Identity: args[0]})
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "reset the number of %s: %s is no longer bound; the next step-up enrols a number\n", res.Identity, res.Phone)
			return nil
		}),
	})

	cmd.AddCommand(&cobra.Command{
		Use:   "reset-budget",
		Short: "Clears today's daily SMS budget counter",
		Long: `
Sets the count of today's daily SMS budget (UTC day) back to zero, on every
instance sharing the store: sends resume at once after the budget was spent.
Find out first why it was spent (SMS pumping?): 'caddy sms-stepup status'.`,
		Example: "  caddy sms-stepup reset-budget",
		Args:    cobra.NoArgs,
		RunE: withOperator(func(ctx context.Context, c *cobra.Command, t operatorTarget, _ []string) error {
			res, err := runOperation[resetBudgetResult](ctx, t, "reset-budget", adminRequest{})
			if err != nil {
				return err
			}
			if res.Max == 0 {
				fmt.Fprintln(c.OutOrStdout(), "no daily budget is configured (daily_budget 0): nothing to reset")
				return nil
			}
			fmt.Fprintf(c.OutOrStdout(), "daily budget reset: %d of %d were used today; now 0 used, %d left\n", res.UsedBefore, res.Max, res.Max)
			return nil
		}),
	})

	statusCmd := &cobra.Command{
		Use:   "status [<identity>]",
		Short: "Shows the store, the daily budget, locked identities and gateway health",
		Long: `
Without an identity: whether the store answers (and where it is), the daily
SMS budget used and left and when it resets, how many identities are locked
out (and the first few, with their wrong codes and until when), and the
gateway's health. Health checks send nothing: Kannel is asked for a message
without a receiver, Twilio for the account; other gateways are "unknown".

With an identity: its wrong codes, lock-out, codes sent, when it may have
the next, its number (masked) and its not-before.

It exits non-zero when the store can't be read.`,
		Example: `  caddy sms-stepup status
  caddy sms-stepup status --json | jq .daily_budget.left
  caddy sms-stepup status alice`,
		Args: cobra.MaximumNArgs(1),
		RunE: withOperator(func(ctx context.Context, c *cobra.Command, t operatorTarget, args []string) error {
			asJSON, _ := c.Flags().GetBool("json")
			if len(args) == 1 {
				st, err := runOperation[identityStatus](ctx, t, "status", adminRequest{Identity: args[0]})
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(c.OutOrStdout(), st)
				}
				printIdentityStatus(c.OutOrStdout(), st, t.now())
				return nil
			}
			max, _ := c.Flags().GetInt("locked")
			if max < 0 || max > maxLockedListed {
				return fmt.Errorf("--locked %d: expected 0 to %d", max, maxLockedListed)
			}
			st, err := runOperation[operatorStatus](ctx, t, "status", adminRequest{Locked: &max})
			if err == nil && !st.Store.Reachable && st.Store.Error != "" {
				// The running Caddy answers with the status, which says
				// that its store can't be read.
				err = errors.New(unreachableStore(st.Store.Type, st.Store.Address, st.Store.Error))
			}
			if st.Handler == "" {
				return err
			}
			if asJSON {
				if werr := printJSON(c.OutOrStdout(), st); werr != nil {
					return werr
				}
			} else {
				printStatus(c.OutOrStdout(), st)
			}
			return err
		}),
	}
	statusCmd.Flags().Bool("json", false, "Print JSON, for scripts")
	statusCmd.Flags().Int("locked", 10, "How many locked identities to list")
	cmd.AddCommand(statusCmd)

	sendTest := &cobra.Command{
		Use:   "send-test --to <number> [--locale en|ja]",
		Short: "Sends one test SMS, with no code, through the configured gateway",
		Long: `
Checks the number against the handler's phone policy, then sends one real SMS
with no code through the configured gateway. It counts against the send
limits and the daily budget like any code (as the identity
"sms-stepup/operator"). It prints the number masked and the gateway's answer;
a number the policy refuses (an IP phone such as Japan's 050, a premium or
toll-free number, a country not allowed ...) is refused with the reason.`,
		Example: `  caddy sms-stepup send-test --to 090-1234-5678
  caddy sms-stepup send-test --to +819012345678 --locale ja`,
		Args: cobra.NoArgs,
		RunE: withOperator(func(ctx context.Context, c *cobra.Command, t operatorTarget, _ []string) error {
			to, _ := c.Flags().GetString("to")
			locale, _ := c.Flags().GetString("locale")
			if strings.TrimSpace(to) == "" {
				return errors.New("--to <number> is required: the phone number to send the test message to")
			}
			res, err := runOperation[sendTestResult](ctx, t, "send-test", adminRequest{To: to, Locale: locale})
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "sent a test message to %s through %s: %s (message id: %s)\n",
				res.Phone, res.Gateway, res.Status, cmp.Or(res.MessageID, "none given"))
			return nil
		}),
	}
	sendTest.Flags().String("to", "", "The phone number (E.164, or national in the handler's default_region)")
	sendTest.Flags().String("locale", "en", "The language of the test message: en or ja")
	cmd.AddCommand(sendTest)

	keygen := &cobra.Command{
		Use:   "keygen [--ed25519 --out <file>]",
		Short: "Makes a new signing key",
		Long: `
Prints a new random signing_key: 32 bytes from the system's secure random
source, base64-encoded (44 characters). Give every instance the same one, for
example through {env.STEPUP_SIGNING_KEY}. The key id (kid) tokens will carry
goes to stderr.

With --ed25519 --out <file>, writes a new Ed25519 private key (PKCS#8 PEM,
mode 0600) for signing_key_file instead, and prints its kid. It never
overwrites a file. It reads no config.`,
		Example: `  STEPUP_SIGNING_KEY=$(caddy sms-stepup keygen)
  caddy sms-stepup keygen --ed25519 --out /etc/caddy/stepup-ed25519.pem`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			c.SilenceUsage = true
			ed, _ := c.Flags().GetBool("ed25519")
			out, _ := c.Flags().GetString("out")
			if !ed {
				if out != "" {
					return errors.New("--out goes with --ed25519; the HMAC key is printed: redirect it where you keep secrets")
				}
				key, kid, err := newSigningKey()
				if err != nil {
					return err
				}
				fmt.Fprintln(c.OutOrStdout(), key)
				fmt.Fprintf(c.ErrOrStderr(), "kid %s: set it as signing_key on every instance (e.g. signing_key {env.STEPUP_SIGNING_KEY})\n", kid)
				return nil
			}
			if out == "" {
				return errors.New("--ed25519 needs --out <file>: where to write the private key")
			}
			kid, err := writeEd25519Key(out)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "wrote a new Ed25519 private key to %s (PKCS#8 PEM, mode 0600), kid %s: set signing_key_file %s\n", out, kid, out)
			return nil
		},
	}
	keygen.Flags().Bool("ed25519", false, "Make an Ed25519 key for signing_key_file (EdDSA tokens) instead")
	keygen.Flags().String("out", "", "With --ed25519: the file to write the private key to (must not exist)")
	cmd.AddCommand(keygen)
}

// identityArg accepts exactly one non-empty identity.
func identityArg(c *cobra.Command, args []string) error {
	if len(args) != 1 || strings.TrimSpace(args[0]) == "" {
		return fmt.Errorf("expected one identity: caddy sms-stepup %s <identity>", c.Name())
	}
	return nil
}

// operatorFunc is one subcommand's work on the chosen handler.
type operatorFunc func(ctx context.Context, c *cobra.Command, t operatorTarget, args []string) error

// operatorTarget is where the operations run: on the handler provisioned
// here from the config (store redis: the store is shared, so acting here
// acts for every instance), or, for the memory store, which only the
// running Caddy holds, in that Caddy through its admin API (admin.go).
// Both run the same operator methods and give the same results and errors.
type operatorTarget struct {
	op     *operator
	remote *adminClient
}

// now is the clock a status is read against.
func (t operatorTarget) now() time.Time {
	if t.op != nil {
		return t.op.h.clock.Now()
	}
	return time.Now()
}

// runOperation runs the admin route's action name with req on t and
// returns its result, of the type the admin API answers with for it.
func runOperation[T any](ctx context.Context, t operatorTarget, name string, req adminRequest) (T, error) {
	var out T
	if t.remote != nil {
		err := t.remote.call(ctx, name, req, &out)
		return out, err
	}
	v, err := runAdminAction(ctx, t.op, name, req)
	out, _ = v.(T)
	return out, err
}

// withOperator loads the config, picks the handler, and runs fn within
// --timeout: on the handler provisioned here as the server would (and
// cleaned up after), or, with the memory store, through the running
// Caddy's admin API. Errors come back as one line for cobra to print, and
// a non-zero exit.
func withOperator(fn operatorFunc) func(*cobra.Command, []string) error {
	return func(c *cobra.Command, args []string) error {
		c.SilenceUsage = true
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
			return fn(ctx, c, operatorTarget{remote: client}, args)
		}
		op, cleanup, err := provisionOperator(ctx, cfgJSON, ref)
		if err != nil {
			return err
		}
		defer cleanup()
		if err := fn(ctx, c, operatorTarget{op: op}, args); err != nil {
			return explainStoreError(err, op.h.store, timeout)
		}
		return nil
	}
}

// adminClient asks the running Caddy's admin API (admin.go) to run the
// operations on its handler: the way to a memory store. It finds and calls
// the admin endpoint as `caddy reload` and `caddy stop` do
// (caddycmd.DetermineAdminAPIAddress, and the request of
// caddycmd.AdminAPIRequest), with the command's --timeout.
type adminClient struct {
	addr    string // as configured: localhost:2019, unix//run/caddy.sock ...
	ref     handlerRef
	config  string // the fingerprint of the handler's config here
	cfgFile string
	who     string
	timeout time.Duration
	stderr  io.Writer
}

func newAdminClient(cfgJSON []byte, cfgFile, address string, ref handlerRef, timeout time.Duration, stderr io.Writer) (*adminClient, error) {
	if address == "" {
		var admin struct {
			Admin struct {
				Disabled bool `json:"disabled"`
			} `json:"admin"`
		}
		_ = json.Unmarshal(cfgJSON, &admin)
		if admin.Admin.Disabled {
			return nil, fmt.Errorf("handler %s uses the in-process memory store, which lives inside the running Caddy, and %s turns Caddy's admin endpoint off (admin off), through which these commands reach it: turn it on (e.g. admin localhost:2019), give --address, or use `store redis`",
				ref.label(), cfgFile)
		}
	}
	addr, err := caddycmd.DetermineAdminAPIAddress(address, cfgJSON, cfgFile, "")
	if err != nil {
		return nil, err
	}
	var h Handler
	fingerprint := ""
	if json.Unmarshal(ref.raw, &h) == nil {
		fingerprint = configFingerprint(&h)
	}
	return &adminClient{addr: addr, ref: ref, config: fingerprint, cfgFile: cfgFile, who: operatorName(), timeout: timeout, stderr: stderr}, nil
}

// call runs action name with req on the running handler and decodes the
// result into out.
func (a *adminClient) call(ctx context.Context, name string, req adminRequest, out any) error {
	req.Handler, req.Config = a.ref.pathPrefix, a.config
	method, target := http.MethodPost, adminBase+name
	var body io.Reader
	if name == "status" {
		q := url.Values{"handler": {req.Handler}, "config": {req.Config}}
		if req.Identity != "" {
			q.Set("identity", req.Identity)
		}
		if req.Locked != nil {
			q.Set("locked", strconv.Itoa(*req.Locked))
		}
		method, target = http.MethodGet, target+"?"+q.Encode()
	} else {
		req.Operator = a.who
		b, err := json.Marshal(req)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	resp, err := a.do(ctx, method, target, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("read the answer of the Caddy at %s: %w", a.addr, err)
	}
	if resp.StatusCode >= 400 {
		return a.failure(resp, data, target)
	}
	var reply struct {
		ConfigMatches *bool           `json:"config_matches"`
		Result        json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(data, &reply); err != nil || len(reply.Result) == 0 {
		return fmt.Errorf("the Caddy at %s answered %s %s with something other than an sms_stepup result (is it running this plugin?)", a.addr, method, adminBase+name)
	}
	if reply.ConfigMatches != nil && !*reply.ConfigMatches {
		fmt.Fprintf(a.stderr, "note: the running Caddy's handler %s was not loaded from the config in %s as it is now (changed since the last reload?); it acted as it runs\n",
			a.ref.pathPrefix, a.cfgFile)
	}
	if err := json.Unmarshal(reply.Result, out); err != nil {
		return fmt.Errorf("read the result of the Caddy at %s: %w", a.addr, err)
	}
	return nil
}

// failure turns an error answer into one line: the admin API's own message
// (the one the command prints for the redis store too), or what the
// answer says about the Caddy there.
func (a *adminClient) failure(resp *http.Response, data []byte, target string) error {
	var apiErr struct {
		Error string `json:"error"`
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != "application/json" || json.Unmarshal(data, &apiErr) != nil || apiErr.Error == "" {
		if resp.StatusCode == http.StatusNotFound {
			return fmt.Errorf("the Caddy at %s has no sms_stepup admin API (HTTP 404 for %s): it runs without this plugin, or an older version of it; run the Caddy built with it",
				a.addr, strings.SplitN(target, "?", 2)[0])
		}
		return fmt.Errorf("the Caddy at %s answered HTTP %d: %s", a.addr, resp.StatusCode, strings.TrimSpace(string(bytes.ToValidUTF8(data[:min(len(data), 200)], nil))))
	}
	if resp.StatusCode == http.StatusForbidden {
		return fmt.Errorf("the admin endpoint at %s refused the request: %s", a.addr, apiErr.Error)
	}
	return errors.New(apiErr.Error)
}

// do sends one request to the admin endpoint, as caddycmd.AdminAPIRequest
// does (the same Origin, any network the address names), bounded by ctx.
func (a *adminClient) do(ctx context.Context, method, uri string, body io.Reader) (*http.Response, error) {
	parsed, err := caddy.ParseNetworkAddress(a.addr)
	if err != nil || parsed.PortRangeSize() > 1 {
		return nil, fmt.Errorf("admin address %q: expected one address such as localhost:2019 or unix//run/caddy.sock", a.addr)
	}
	origin := "http://" + parsed.JoinHostPort(0)
	local := parsed.IsUnixNetwork() || parsed.IsFdNetwork()
	if local {
		origin = "http://127.0.0.1"
		// A unix socket's address may end in |<permission bits>.
		parsed.Host, _, _ = strings.Cut(parsed.Host, "|")
	}
	req, err := http.NewRequestWithContext(ctx, method, origin+uri, body)
	if err != nil {
		return nil, err
	}
	if !local {
		req.Header.Set("Origin", origin)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	dialer := &net.Dialer{}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, parsed.Network, parsed.JoinHostPort(0))
		},
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	var opErr *net.OpError
	switch {
	case err == nil:
		return resp, nil
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return nil, fmt.Errorf("no running Caddy answered at %s (%v); the memory store of handler %s lives inside it: start Caddy, or use `store redis`",
			a.addr, opErr.Err, a.ref.label())
	case errors.Is(err, context.DeadlineExceeded):
		return nil, fmt.Errorf("the Caddy at %s did not answer within --timeout %s", a.addr, a.timeout)
	}
	return nil, fmt.Errorf("ask the Caddy at %s: %w", a.addr, err)
}

// loadOperatorConfig reads the config as `caddy run` would: --config, or
// the Caddyfile in the current directory.
func loadOperatorConfig(configFile, adapter string) ([]byte, string, error) {
	cfg, used, _, err := caddycmd.LoadConfig(configFile, adapter)
	if err != nil {
		return nil, "", err
	}
	if len(cfg) == 0 {
		return nil, "", errors.New("no config: give --config <Caddyfile or JSON>, or run in the directory of the Caddyfile")
	}
	if used == "" {
		used = "the config"
	}
	return cfg, used, nil
}

// handlerRef is one sms_stepup handler found in the config.
type handlerRef struct {
	index      int
	server     string
	hosts      []string
	pathPrefix string
	storeType  string
	storeAddr  string
	raw        json.RawMessage
}

func (r handlerRef) label() string {
	s := "#" + strconv.Itoa(r.index) + " (" + r.pathPrefix
	if len(r.hosts) > 0 {
		s += " on " + strings.Join(r.hosts, ", ")
	}
	return s + ")"
}

type jsonRoute struct {
	Match  []map[string]json.RawMessage `json:"match"`
	Handle []json.RawMessage            `json:"handle"`
}

// findHandlers lists the sms_stepup handlers of the http app in a stable
// order (servers by name, routes in order, subroutes depth first), with the
// host matchers of the routes that lead to them.
func findHandlers(cfgJSON []byte) ([]handlerRef, error) {
	var cfg struct {
		Apps struct {
			HTTP *struct {
				Servers map[string]struct {
					Routes []jsonRoute `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		return nil, fmt.Errorf("read the config: %w", err)
	}
	var refs []handlerRef
	if cfg.Apps.HTTP == nil {
		return nil, errors.New("no http app, so no sms_stepup handler")
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Apps.HTTP.Servers)) {
		if err := walkRoutes(cfg.Apps.HTTP.Servers[name].Routes, name, nil, &refs); err != nil {
			return nil, err
		}
	}
	if len(refs) == 0 {
		return nil, errors.New("no sms_stepup handler in the config")
	}
	return refs, nil
}

func walkRoutes(routes []jsonRoute, server string, hosts []string, refs *[]handlerRef) error {
	for _, rt := range routes {
		routeHosts := hosts
		for _, set := range rt.Match {
			var hs []string
			if raw, ok := set["host"]; ok && json.Unmarshal(raw, &hs) == nil {
				routeHosts = append(append([]string(nil), routeHosts...), hs...)
			}
		}
		for _, raw := range rt.Handle {
			var head struct {
				Handler string      `json:"handler"`
				Routes  []jsonRoute `json:"routes"`
			}
			if err := json.Unmarshal(raw, &head); err != nil {
				return fmt.Errorf("read a handler of server %s: %w", server, err)
			}
			switch head.Handler {
			case "subroute":
				if err := walkRoutes(head.Routes, server, routeHosts, refs); err != nil {
					return err
				}
			case "sms_stepup":
				ref, err := newHandlerRef(raw)
				if err != nil {
					return err
				}
				ref.index, ref.server, ref.hosts = len(*refs), server, routeHosts
				*refs = append(*refs, ref)
			}
		}
	}
	return nil
}

// newHandlerRef reads what the listing shows of a handler, and keeps its
// JSON without the "handler" key, as Caddy passes it to the module.
func newHandlerRef(raw json.RawMessage) (handlerRef, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return handlerRef{}, fmt.Errorf("read an sms_stepup handler: %w", err)
	}
	delete(fields, "handler")
	stripped, err := json.Marshal(fields)
	if err != nil {
		return handlerRef{}, err
	}
	var h struct {
		PathPrefix string `json:"path_prefix"`
		Store      *struct {
			Type      string   `json:"type"`
			URL       string   `json:"url"`
			Addresses []string `json:"addresses"`
		} `json:"store"`
	}
	if err := json.Unmarshal(stripped, &h); err != nil {
		return handlerRef{}, fmt.Errorf("read an sms_stepup handler: %w", err)
	}
	ref := handlerRef{pathPrefix: strings.TrimRight(h.PathPrefix, "/"), storeType: "memory", raw: stripped}
	if ref.pathPrefix == "" {
		ref.pathPrefix = DefaultPathPrefix
	}
	if h.Store != nil && h.Store.Type != "" {
		ref.storeType = h.Store.Type
		ref.storeAddr = strings.Join(h.Store.Addresses, ",")
		if ref.storeAddr == "" {
			ref.storeAddr = redactURL(h.Store.URL)
		}
	}
	return ref, nil
}

// redactURL drops the user and password from a redis:// URL.
func redactURL(raw string) string {
	if at := strings.LastIndex(raw, "@"); at >= 0 {
		if scheme := strings.Index(raw, "://"); scheme >= 0 && scheme < at {
			return raw[:scheme+3] + raw[at+1:]
		}
		return raw[at+1:]
	}
	return raw
}

// pickHandler chooses by --handler, or the only handler there is.
func pickHandler(refs []handlerRef, pick, cfgFile string) (handlerRef, error) {
	if pick == "" {
		if len(refs) == 1 {
			return refs[0], nil
		}
		return handlerRef{}, fmt.Errorf("%s has %d sms_stepup handlers; choose one with --handler <number or path_prefix>:\n%s", cfgFile, len(refs), listHandlers(refs))
	}
	if n, err := strconv.Atoi(pick); err == nil {
		if n < 0 || n >= len(refs) {
			return handlerRef{}, fmt.Errorf("--handler %d: expected a number from 0 to %d:\n%s", n, len(refs)-1, listHandlers(refs))
		}
		return refs[n], nil
	}
	want := strings.TrimRight(pick, "/")
	var found []handlerRef
	for _, r := range refs {
		if r.pathPrefix == want {
			found = append(found, r)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return handlerRef{}, fmt.Errorf("--handler %q: no sms_stepup handler has that path_prefix; expected one of:\n%s", pick, listHandlers(refs))
	}
	return handlerRef{}, fmt.Errorf("--handler %q: %d handlers have that path_prefix; choose one by number:\n%s", pick, len(found), listHandlers(found))
}

func listHandlers(refs []handlerRef) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, r := range refs {
		hosts := "any host"
		if len(r.hosts) > 0 {
			hosts = strings.Join(r.hosts, ",")
		}
		store := r.storeType
		if r.storeAddr != "" {
			store += " " + r.storeAddr
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\tserver %s\tstore %s\n", r.index, r.pathPrefix, hosts, r.server, store)
	}
	tw.Flush()
	return strings.TrimRight(b.String(), "\n")
}

// provisionOperator sets the handler up as the server does: the config's
// storage (for a signing key generated into it) and logging (for the audit
// entries), then the handler with its store, gateway, keys and limits. The
// returned cleanup undoes it (the store's connection pool, sweepers).
//
// Unlike the server it never generates a signing key: with no signing_key
// in the config and none in storage yet, a key made here would differ from
// the one the server makes, and the daily budget, send limits and code
// MACs are keyed with it. It says so instead.
func provisionOperator(ctx context.Context, cfgJSON []byte, ref handlerRef) (*operator, func(), error) {
	var full caddy.Config
	if err := json.Unmarshal(cfgJSON, &full); err != nil {
		return nil, nil, fmt.Errorf("read the config: %w", err)
	}
	cfg := &caddy.Config{StorageRaw: full.StorageRaw, Logging: full.Logging}
	base, err := caddy.ProvisionContext(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("set up the config's storage and logs: %w", err)
	}
	cctx, cancel := caddy.NewContext(base)

	var probe struct {
		SigningKey string `json:"signing_key"`
	}
	_ = json.Unmarshal(ref.raw, &probe)
	if probe.SigningKey == "" {
		_, err := cctx.Storage().Load(ctx, generatedKeyName)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			cancel()
			return nil, nil, fmt.Errorf("handler %s has no signing_key and %s holds no generated one (%s): start Caddy with this config once so it makes one, and run this command as the same user, or set signing_key; a key made here would not match the server's",
				ref.label(), describeStorage(cctx.Storage()), generatedKeyName)
		case err != nil:
			cancel()
			return nil, nil, fmt.Errorf("read the generated signing key from %s: %w", describeStorage(cctx.Storage()), err)
		}
	}
	mod, err := cctx.LoadModuleByID("http.handlers.sms_stepup", ref.raw)
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("set up handler %s as the server would: %w (operator commands read the server's config: run them with the server's environment)", ref.label(), err)
	}
	op := &operator{h: mod.(*Handler), audit: cfg.Logging.Logger(operatorLog{}), who: operatorName()}
	return op, cancel, nil
}

func describeStorage(s certmagic.Storage) string {
	if fs, ok := s.(*certmagic.FileStorage); ok {
		return "Caddy's storage at " + fs.Path
	}
	return fmt.Sprintf("Caddy's storage (%T)", s)
}

// explainStoreError turns a store failure into one line naming the store
// (and the command's --timeout, when one is given and ran out), still
// wrapping otp.ErrStoreUnavailable.
func explainStoreError(err error, store otp.Store, timeout time.Duration) error {
	if !errors.Is(err, otp.ErrStoreUnavailable) {
		return err
	}
	typ, addr := describeStore(store)
	msg := storeError(err)
	if errors.Is(err, context.DeadlineExceeded) && timeout > 0 {
		msg += fmt.Sprintf(" (no answer within --timeout %s)", timeout)
	}
	return &operatorError{unreachableStore(typ, addr, msg), err}
}

// unreachableStore is the one line that says a store can't be read, for a
// store here and for the running Caddy's status alike.
func unreachableStore(typ, addr, msg string) string {
	return fmt.Sprintf("store %s at %s is unreachable: %s", typ, addr, msg)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printStatus(w io.Writer, st operatorStatus) {
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
	printHealth(tw, "gateway", st.Gateway)
	tw.Flush()
}

// rfc3339Milli is how not-befores are shown: stores keep milliseconds.
const rfc3339Milli = "2006-01-02T15:04:05.000Z07:00"

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

func printIdentityStatus(w io.Writer, st identityStatus, now time.Time) {
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

// newSigningKey returns a signing_key (32 random bytes, base64) and the key
// id tokens signed with it carry.
func newSigningKey() (key, kid string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	key = base64.StdEncoding.EncodeToString(b)
	k, err := otp.DeriveKeys([]byte(key))
	if err != nil {
		return "", "", err
	}
	return key, k.ID, nil
}

// writeEd25519Key writes a new Ed25519 private key to path (PKCS#8 PEM,
// 0600), never over an existing file, and returns its kid.
func writeEd25519Key(path string) (string, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("%s exists: keygen never overwrites a key; choose another --out", path)
	}
	if err != nil {
		return "", err
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		os.Remove(path)
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return otp.NewEdKey(pub, priv).ID, nil
}

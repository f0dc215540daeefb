package operator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/caddymodule"
)

// adminClient asks the running Caddy's admin API (admin.go) to run the
// actions on its handler: the way to a memory store. It finds and calls
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
	var h caddymodule.Handler
	fingerprint := ""
	if json.Unmarshal(ref.raw, &h) == nil {
		fingerprint = caddymodule.ConfigFingerprint(&h)
	}
	return &adminClient{addr: addr, ref: ref, config: fingerprint, cfgFile: cfgFile, who: operatorName(), timeout: timeout, stderr: stderr}, nil
}

// call runs a with req on the running handler and returns its result.
func (a *adminClient) call(ctx context.Context, act *action, req request) (result, error) {
	req.Handler, req.Config, req.Operator = a.ref.pathPrefix, a.config, a.who
	method, target := act.method(), adminBase+act.name
	var body io.Reader
	if method == http.MethodGet {
		target += "?" + req.query(act).Encode()
	} else {
		b, err := json.Marshal(req)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	resp, err := a.do(ctx, method, target, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("read the answer of the Caddy at %s: %w", a.addr, err)
	}
	if resp.StatusCode >= 400 {
		return nil, a.failure(resp, data, target)
	}
	var reply struct {
		ConfigMatches *bool           `json:"config_matches"`
		Result        json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(data, &reply); err != nil || len(reply.Result) == 0 {
		return nil, fmt.Errorf("the Caddy at %s answered %s %s with something other than an sms_stepup result (is it running this plugin?)", a.addr, method, adminBase+act.name)
	}
	if reply.ConfigMatches != nil && !*reply.ConfigMatches {
		fmt.Fprintf(a.stderr, "note: the running Caddy's handler %s was not loaded from the config in %s as it is now (changed since the last reload?); it acted as it runs\n",
			a.ref.pathPrefix, a.cfgFile)
	}
	res, err := act.decode(req, reply.Result)
	if err != nil {
		return nil, fmt.Errorf("read the result of the Caddy at %s: %w", a.addr, err)
	}
	return res, nil
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

package operator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"

	"github.com/caddy-sms-stepup/caddy-sms-stepup/caddymodule"
)

// provisionOperator sets the handler up as the server does: the config's
// storage (for a signing key generated into it) and logging (for the audit
// entries), then the handler with its store, gateway, keys and limits. The
// returned cleanup undoes it (the store's connection pool, sweepers).
//
// Unlike the server it never generates a signing key: with no signing_key
// in the config and none in storage yet, a key made here would differ from
// the one the server makes, and the daily budget, send limits and code
// MACs are keyed with it. It says so instead.
func provisionOperator(ctx context.Context, cfgJSON []byte, ref handlerRef) (*actor, func(), error) {
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
		_, err := cctx.Storage().Load(ctx, caddymodule.GeneratedKeyName)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			cancel()
			return nil, nil, fmt.Errorf("handler %s has no signing_key and %s holds no generated one (%s): start Caddy with this config once so it makes one, and run this command as the same user, or set signing_key; a key made here would not match the server's",
				ref.label(), describeStorage(cctx.Storage()), caddymodule.GeneratedKeyName)
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
	h, ok := mod.(Handler)
	if !ok {
		cancel()
		return nil, nil, fmt.Errorf("handler %s: module %T is not an sms_stepup handler this command knows", ref.label(), mod)
	}
	return &actor{h: h, audit: cfg.Logging.Logger(operatorLog{}), who: operatorName()}, cancel, nil
}

func describeStorage(s certmagic.Storage) string {
	if fs, ok := s.(*certmagic.FileStorage); ok {
		return "Caddy's storage at " + fs.Path
	}
	return fmt.Sprintf("Caddy's storage (%T)", s)
}

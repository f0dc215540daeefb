// Package stepup is caddy-sms-stepup: SMS one-time-code step-up
// authentication for Caddy. Importing it registers the http.handlers.sms_stepup
// module, its Caddyfile directive and its store and gateway modules, and the
// operator actions (the `caddy sms-stepup` command and the admin API
// admin.api.sms_stepup), so
//
//	xcaddy build --with github.com/caddy-sms-stepup/caddy-sms-stepup
//
// builds a Caddy that has them.
package stepup

import (
	// The Caddy modules.
	_ "github.com/caddy-sms-stepup/caddy-sms-stepup/caddymodule"
	// The operator command and admin API.
	_ "github.com/caddy-sms-stepup/caddy-sms-stepup/caddymodule/operator"
)

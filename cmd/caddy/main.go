// Command caddy is Caddy with its standard modules and caddy-sms-stepup.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-sms-stepup/caddy-sms-stepup"
)

func main() {
	caddycmd.Main()
}

package caddymodule

import (
	"reflect"

	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

// siteAddresses are the addresses of the site block a directive is in, as
// the Caddyfile wrote them, for the handler's sites: its scope and the
// name of its service (scope.go). Caddy's Helper keeps the block to itself
// (Caddy v2.11.9 exports no accessor), so they are read through
// reflection, without changing anything; the adapt golden tests fail if a
// Caddy upgrade moves them. A named route (`&(name)`) may serve several
// sites, so it has none, as has anything this cannot read: the handler
// then falls back to its server's listen addresses.
func siteAddresses(h httpcaddyfile.Helper) []string {
	if h.IsNamedRoute() {
		return nil
	}
	block := reflect.ValueOf(h).FieldByName("parentBlock")
	if block.Kind() != reflect.Struct {
		return nil
	}
	keys := block.FieldByName("Keys")
	if keys.Kind() != reflect.Slice {
		return nil
	}
	var sites []string
	for i := range keys.Len() {
		token := keys.Index(i)
		if token.Kind() != reflect.Struct {
			return nil
		}
		text := token.FieldByName("Text")
		if text.Kind() != reflect.String {
			return nil
		}
		sites = append(sites, text.String())
	}
	return sites
}

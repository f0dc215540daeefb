package caddymodule

import "net/http"

// setHeaders sets header fields as Header.Set does, from name and value
// pairs, names in canonical form. Set makes a one-value slice per field;
// a page sets seven, so here they share one array (issue 17). Each field's
// slice has room for its value only: an Add to one of them copies, and
// never writes into the next field's value.
func setHeaders(hdr http.Header, pairs ...string) {
	values := make([]string, len(pairs)/2)
	for i := range values {
		values[i] = pairs[2*i+1]
		hdr[pairs[2*i]] = values[i : i+1 : i+1]
	}
}

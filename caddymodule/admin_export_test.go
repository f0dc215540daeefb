package caddymodule

import "testing"

// RunOperatorCommand runs `caddy sms-stepup args...` in-process, for the
// tests of package caddymodule_test that drive a running Caddy
// (admin_test.go), and returns its stdout and stderr.
func RunOperatorCommand(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	return runOperator(t, args...)
}

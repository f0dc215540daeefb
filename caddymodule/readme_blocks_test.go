package caddymodule

import (
	"os"
	"regexp"
	"testing"
)

// readmeCaddyfileBlocks finds the README's ```caddyfile blocks.
var readmeCaddyfileBlocks = regexp.MustCompile("(?s)```caddyfile\n(.*?)```")

// readmeCaddyfileBlock returns the last of the README's caddyfile blocks
// that match accepts, or "" if none does: the tests that adapt the
// README's examples find theirs with it, so the README can't show a block
// that fails to load.
func readmeCaddyfileBlock(t *testing.T, match func(block string) bool) string {
	t.Helper()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var block string
	for _, m := range readmeCaddyfileBlocks.FindAllStringSubmatch(string(readme), -1) {
		if match(m[1]) {
			block = m[1]
		}
	}
	return block
}

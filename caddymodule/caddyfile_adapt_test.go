package caddymodule

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	// rate_limit, to check the order of scrape_rpc after it
	_ "github.com/mholt/caddy-ratelimit"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// TestCaddyfileAdapt adapts every golden file of
// testdata/caddyfile_adapt/*.caddyfiletest (a Caddyfile, a line of dashes,
// the JSON it must adapt to). gateway_handlers: the scrapegate global option
// with its placeholders left unresolved (no secret in the adapted config),
// scrape_rpc ordered after rate_limit without an `order` option, scrape_info,
// and scrape_error in handle_errors. docs_handlers: the docs, dashboard,
// OpenAPI and scripts handlers with their options.
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob("testdata/caddyfile_adapt/*.caddyfiletest")
	if err != nil || len(files) < 2 {
		t.Fatalf("golden files missing: %v %v", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			in, want, ok := strings.Cut(strings.ReplaceAll(string(b), "\r\n", "\n"), "----------")
			if !ok {
				t.Fatal("no ---------- separator")
			}
			if !caddytest.CompareAdapt(t, f, in, "caddyfile", strings.TrimSpace(want)) {
				t.Error("the adapted JSON differs from the golden file (diff above)")
			}
		})
	}
}

package caddymodule

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// TestDocsCaddyfileAdapt adapts the docs handlers' golden files
// (testdata/caddyfile_adapt/docs_*.caddyfiletest: a Caddyfile, a line of
// dashes, the JSON it must adapt to).
func TestDocsCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob("testdata/caddyfile_adapt/docs_*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
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

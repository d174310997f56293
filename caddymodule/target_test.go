package caddymodule

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// runTarget runs scrape_target on a request with body and returns the
// placeholder and the body the next handler read.
func runTarget(t *testing.T, h *ScrapeTarget, body io.Reader, contentLength int64) (host, seen string) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/scrape", body)
	r.ContentLength = contentLength
	repl := caddyhttp.NewTestReplacer(r)
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			seen = "error: " + err.Error()
		} else {
			seen = string(b)
		}
		host, _ = repl.GetString(TargetHostPlaceholder)
		return r.Body.Close()
	})
	if err := h.ServeHTTP(httptest.NewRecorder(), r, next); err != nil {
		t.Fatal(err)
	}
	return host, seen
}

// TestScrapeTarget checks the placeholder and that the body reaches the
// next handler unchanged, whatever it holds.
func TestScrapeTarget(t *testing.T) {
	h := &ScrapeTarget{}
	if err := h.Provision(testContext(t)); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ body, host string }{
		{`{"script_name":"echo","parameters":{"url":"https://Example.COM:8443/a?b#c"}}`, "example.com"},
		{`{"parameters":{"url":"http://user:pw@sub.example.org./x"}}`, "sub.example.org"},
		{`{"parameters":{"url":"https://[2001:DB8::1]:443/"}}`, "2001:db8::1"},
		{`{"parameters":{"url":"https://bücher.de/"}}`, "xn--bcher-kva.de"},
		{`{"parameters":{"url":"https://exa%6dple.com/"}}`, ""}, // Go (and the worker) refuse escapes in hosts
		{`{"PARAMETERS":{"url":"https://a.test/"}}`, ""},        // names are exact, as scrape_rpc and scripts read them
		{`{"parameters":{"URL":"https://a.test/"}}`, ""},
		{`{"parameters":{"url":"https://a.test/","url":"https://b.test/"}}`, "b.test"}, // the last, as Go decoders take it
		{`{"parameters":{"url":"example.com/path"}}`, ""},
		{`{"parameters":{"url":"mailto:x@example.com"}}`, ""},
		{`{"parameters":{"url":42}}`, ""},
		{`{"parameters":{"url":null}}`, ""},
		{`{"parameters":["https://a.test/"]}`, ""},
		{`{"parameters":"https://a.test/"}`, ""},
		{`{"script_name":"echo"}`, ""},
		{`{"script_name":"echo","parameters":{}}`, ""},
		{`not json {"parameters":{"url":"https://a.test/"}}`, ""},
		{`{"parameters":{"url":"https://a.test/"}`, ""},
		{`[]`, ""},
		{``, ""},
		{`{"parameters":{"url":"https://` + strings.Repeat("a", 300) + `.test/"}}`, ""},
	}
	for _, tc := range tests {
		host, seen := runTarget(t, h, strings.NewReader(tc.body), int64(len(tc.body)))
		if host != tc.host {
			t.Errorf("body %.60q: host = %q, want %q", tc.body, host, tc.host)
		}
		if seen != tc.body {
			t.Errorf("body %.60q: next handler read %.60q", tc.body, seen)
		}
	}
}

// TestScrapeTargetLargeBody checks that a body over max_body passes through
// whole and unparsed, with or without a Content-Length.
func TestScrapeTargetLargeBody(t *testing.T) {
	h := &ScrapeTarget{MaxBody: 64}
	if err := h.Provision(testContext(t)); err != nil {
		t.Fatal(err)
	}
	body := `{"parameters":{"url":"https://a.test/"},"pad":"` + strings.Repeat("x", 100) + `"}`
	for _, cl := range []int64{int64(len(body)), -1} {
		host, seen := runTarget(t, h, strings.NewReader(body), cl)
		if host != "" || seen != body {
			t.Errorf("content length %d: host %q, body intact %v", cl, host, seen == body)
		}
	}
	// a read error reaches the next handler too
	host, seen := runTarget(t, h, io.MultiReader(strings.NewReader(`{"par`), errReader{}), -1)
	if host != "" || !strings.HasPrefix(seen, "error: ") {
		t.Errorf("read error: host %q, seen %q", host, seen)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

// TestScrapeTargetCaddyfile checks the directive's parsing.
func TestScrapeTargetCaddyfile(t *testing.T) {
	h := new(ScrapeTarget)
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("scrape_target {\nmax_body 2MiB\n}")); err != nil || h.MaxBody != 2<<20 {
		t.Fatalf("got %d, %v", h.MaxBody, err)
	}
	for _, bad := range []string{"scrape_target x", "scrape_target {\nmax_body\n}", "scrape_target {\nmax_body lots\n}",
		"scrape_target {\nmax_body 1KB\nmax_body 2KB\n}", "scrape_target {\nfoo\n}"} {
		if err := new(ScrapeTarget).UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

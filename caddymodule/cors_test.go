package caddymodule

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// newCORS parses and provisions a scrape_cors handler.
func newCORS(t *testing.T, block string) (*CORS, error) {
	t.Helper()
	h := new(CORS)
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(block)); err != nil {
		return nil, err
	}
	if err := h.Provision(testContext(t)); err != nil {
		return nil, err
	}
	return h, h.Validate()
}

// corsCall runs h on a request and reports the response and whether next ran.
func corsCall(h *CORS, method string, headers map[string]string) (*httptest.ResponseRecorder, bool, error) {
	r := httptest.NewRequest(method, "/scrape", nil)
	for k, v := range headers {
		r.Header.Set(k, v)
	}
	caddyhttp.NewTestReplacer(r)
	w := httptest.NewRecorder()
	called := false
	err := h.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		called = true
		return nil
	}))
	return w, called, err
}

// TestCORS checks preflights and simple requests for allowed and other
// origins.
func TestCORS(t *testing.T) {
	h, err := newCORS(t, "scrape_cors http://localhost:3000 https://App.Example.com,https://b.example {\nmax_age 1h\n}")
	if err != nil {
		t.Fatal(err)
	}
	preflight := map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST",
		"Access-Control-Request-Headers": "authorization, content-type"}
	w, called, err := corsCall(h, http.MethodOptions, preflight)
	if err != nil || called || w.Code != http.StatusNoContent {
		t.Fatalf("preflight: %d, next %v, %v", w.Code, called, err)
	}
	want := map[string]string{
		"Access-Control-Allow-Origin":  "https://app.example.com",
		"Access-Control-Allow-Methods": "GET, POST, OPTIONS",
		"Access-Control-Allow-Headers": "Authorization, X-API-Key, Content-Type, Accept-Language",
		"Access-Control-Max-Age":       "3600",
	}
	for k, v := range want {
		if got := w.Header().Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if w.Header().Get("Access-Control-Allow-Credentials") != "" {
		t.Error("credentials allowed by default")
	}
	if vary := w.Header().Values("Vary"); len(vary) != 3 || vary[0] != "Origin" {
		t.Errorf("Vary = %q", vary)
	}

	// a preflight from another origin is refused and never authenticated
	preflight["Origin"] = "https://evil.example"
	_, called, err = corsCall(h, http.MethodOptions, preflight)
	var ce *CodedError
	if called || !errors.As(err, &ce) || ce.Code != CodeForbidden {
		t.Fatalf("foreign preflight: next %v, %v", called, err)
	}

	// a simple request from an allowed origin gets the headers and goes on
	w, called, err = corsCall(h, http.MethodPost, map[string]string{"Origin": "http://localhost:3000"})
	if err != nil || !called || w.Header().Get("Access-Control-Allow-Origin") != "http://localhost:3000" ||
		w.Header().Get("Access-Control-Expose-Headers") == "" || w.Header().Get("Vary") != "Origin" {
		t.Fatalf("allowed request: next %v, %v, %v", called, err, w.Header())
	}
	// from another origin: no CORS headers, but Vary, and it goes on
	w, called, err = corsCall(h, http.MethodPost, map[string]string{"Origin": "http://localhost:3001"})
	if err != nil || !called || w.Header().Get("Access-Control-Allow-Origin") != "" || w.Header().Get("Vary") != "Origin" {
		t.Fatalf("foreign request: next %v, %v, %v", called, err, w.Header())
	}
	// no Origin: untouched but for Vary
	w, called, _ = corsCall(h, http.MethodGet, nil)
	if !called || w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("request without Origin")
	}
	// OPTIONS without Access-Control-Request-Method is not a preflight
	_, called, _ = corsCall(h, http.MethodOptions, map[string]string{"Origin": "http://localhost:3000"})
	if !called {
		t.Fatal("plain OPTIONS not passed on")
	}
}

// TestCORSWildcard checks "*" and that it never goes with credentials.
func TestCORSWildcard(t *testing.T) {
	h, err := newCORS(t, "scrape_cors *")
	if err != nil {
		t.Fatal(err)
	}
	w, _, _ := corsCall(h, http.MethodOptions, map[string]string{"Origin": "https://x.example", "Access-Control-Request-Method": "GET"})
	if w.Header().Get("Access-Control-Allow-Origin") != "*" || w.Header().Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("headers %v", w.Header())
	}
	if _, err := newCORS(t, "scrape_cors * {\nallow_credentials\n}"); err == nil {
		t.Fatal("wildcard with credentials accepted")
	}
	if err := (&CORS{AllowedOrigins: []string{"https://a.example *"}, AllowCredentials: true}).Provision(testContext(t)); err != nil {
		t.Fatal(err)
	}
	c := &CORS{AllowedOrigins: []string{"https://a.example *"}, AllowCredentials: true}
	_ = c.Provision(testContext(t))
	if c.Validate() == nil {
		t.Fatal("JSON config with wildcard and credentials validated")
	}
	h, err = newCORS(t, "scrape_cors https://a.example {\nallow_credentials\n}")
	if err != nil {
		t.Fatal(err)
	}
	w, _, _ = corsCall(h, http.MethodGet, map[string]string{"Origin": "https://a.example"})
	if w.Header().Get("Access-Control-Allow-Credentials") != "true" || w.Header().Get("Access-Control-Allow-Origin") != "https://a.example" {
		t.Fatalf("headers %v", w.Header())
	}
}

// TestCORSCaddyfile checks the directive's errors.
func TestCORSCaddyfile(t *testing.T) {
	for _, bad := range []string{
		"scrape_cors", "scrape_cors null", "scrape_cors ftp://a.example", "scrape_cors https://a.example/path",
		"scrape_cors a.example", "scrape_cors https://a.example {\nmax_age forever\n}", "scrape_cors https://a.example {\nfoo\n}",
		"scrape_cors https://a.example {\nallow_credentials yes\n}", "scrape_cors https://a.example {\nmethods\n}",
		"scrape_cors https://a.example {\nmax_age 1m\nmax_age 2m\n}",
	} {
		if _, err := newCORS(t, bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

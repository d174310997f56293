package caddymodule

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/scrapegate/scrapegate/rpc"
)

func TestScrapeHealth(t *testing.T) {
	f := newFakeLink()
	h := &ScrapeHealth{client: f, startedAt: time.Now().Add(-time.Hour)}
	srv := serveHandler(h, "", "")

	get := func(method string) (*httptest.ResponseRecorder, HealthResponse) {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest(method, "/health", nil))
		var body HealthResponse
		if method == http.MethodGet {
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
		}
		return rec, body
	}

	rec, body := get(http.MethodGet)
	if rec.Code != http.StatusOK || body.Status != "ok" {
		t.Fatalf("up: %d %+v", rec.Code, body)
	}
	if b := body.Components["broker"]; b.Status != "up" || b.ConnectionName == "" {
		t.Errorf("broker = %+v", b)
	}
	if g := body.Components["gateway"]; g.Status != "up" || g.UptimeSeconds == nil || *g.UptimeSeconds < 3599 {
		t.Errorf("gateway = %+v", g)
	}
	if w := body.Components["workers"]; w.Status != "none" || w.Live == nil || *w.Live != 0 {
		t.Errorf("workers = %+v", w)
	}

	f.mu.Lock()
	f.workers = []rpc.WorkerInfo{worker("w1", "default", true, "echo"), worker("w2", "default", false, "echo")}
	f.mu.Unlock()
	f.connected.Store(false)
	rec, body = get(http.MethodGet)
	if rec.Code != http.StatusServiceUnavailable || body.Status != "unavailable" || body.Components["broker"].Status != "down" {
		t.Fatalf("down: %d %+v", rec.Code, body)
	}
	if w := body.Components["workers"]; w.Status != "up" || *w.Live != 1 {
		t.Errorf("workers = %+v", w)
	}
	if rec.Header().Get("Cache-Control") != "no-store" {
		t.Error("health may be cached")
	}

	rec, _ = get(http.MethodHead)
	if rec.Code != http.StatusServiceUnavailable || rec.Body.Len() != 0 {
		t.Errorf("HEAD: %d, %d bytes", rec.Code, rec.Body.Len())
	}
	rec, _ = get(http.MethodDelete)
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("DELETE: %d", rec.Code)
	}
}

func TestScrapeHealthCaddyfile(t *testing.T) {
	for in, wantErr := range map[string]string{
		"scrape_health":              "",
		"scrape_health now":          "wrong argument count",
		"scrape_health {\n  x\n}":    "unrecognized subdirective: x",
		"scrape_health {\n}":         "",
		"scrape_health {\n a b c\n}": "unrecognized subdirective: a",
	} {
		var h ScrapeHealth
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in))
		if wantErr == "" && err != nil || wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)) {
			t.Errorf("%q: error %v, want %q", in, err, wantErr)
		}
	}
}

package caddymodule

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// TestDocsAssetsProvenance checks that the embedded third-party files are
// the ones assets/README.md records (copied unchanged from the pinned npm
// package), and that the lock pins the same version and integrity.
func TestDocsAssetsProvenance(t *testing.T) {
	readme, err := os.ReadFile("assets/README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := regexp.MustCompile("(?m)^\\| `([^`]+)` \\| `[^`]+` \\| `([0-9a-f]{64})` \\|$").FindAllStringSubmatch(string(readme), -1)
	if len(rows) < 3 {
		t.Fatalf("found %d digest rows in assets/README.md", len(rows))
	}
	for _, row := range rows {
		b, err := fs.ReadFile(pageAssets, path.Join("assets/docs", row[1]))
		if err != nil {
			t.Errorf("%s: %v", row[1], err)
			continue
		}
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); got != row[2] {
			t.Errorf("%s: sha256 %s, README says %s", row[1], got, row[2])
		}
	}
	var lock struct {
		Packages map[string]struct{ Version, Integrity string } `json:"packages"`
	}
	b, err := os.ReadFile("assets/package-lock.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &lock); err != nil {
		t.Fatal(err)
	}
	p := lock.Packages["node_modules/swagger-ui-dist"]
	if !strings.Contains(string(readme), "`"+p.Version+"`") || !strings.Contains(string(readme), p.Integrity) {
		t.Errorf("the lock pins %s %s; assets/README.md does not say so", p.Version, p.Integrity)
	}
}

// provisioned returns h after Provision with a bare context.
func provisioned[T caddy.Provisioner](t *testing.T, h T) T {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if v, ok := any(h).(caddy.Validator); ok {
		if err := v.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// get serves one GET of target through h.
func get(t *testing.T, h caddyhttp.MiddlewareHandler, target string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, target, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w, err := serveOnce(t, h, r)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	return w
}

// assetLinks returns the URLs of the page's scripts and stylesheets.
func assetLinks(page string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`(?:src|href)="([^"]+\?v=[0-9a-f]+)"`).FindAllStringSubmatch(page, -1) {
		out = append(out, m[1])
	}
	return out
}

func TestScrapeDocsServeHTTP(t *testing.T) {
	h := provisioned(t, &ScrapeDocs{Title: `A <b>"quoted"</b> API`})
	w := get(t, h, "/docs", nil)
	page := w.Body.String()
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET /docs: %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP = %q", csp)
	}
	if !strings.Contains(page, `data-spec-url="/openapi.json"`) || !strings.Contains(page, `href="/dashboard"`) {
		t.Error("the page does not name the spec and the dashboard")
	}
	if strings.Contains(page, "<b>") || !strings.Contains(page, "A &lt;b&gt;&#34;quoted&#34;&lt;/b&gt; API") {
		t.Error("the title is not escaped")
	}
	if strings.Contains(page, "http://") || strings.Contains(page, "https://") || strings.Contains(page, "//cdn") {
		t.Error("the page links something outside the gateway")
	}
	links := assetLinks(page)
	if len(links) != 4 {
		t.Fatalf("asset links = %v", links)
	}
	for _, l := range links {
		if !strings.HasPrefix(l, "docs/") {
			t.Errorf("from /docs, %s does not resolve under /docs/", l)
		}
		aw := get(t, h, "/"+l, map[string]string{"Accept-Encoding": "gzip, br"})
		if aw.Code != 200 || aw.Header().Get("Cache-Control") != "public, max-age=31536000, immutable" {
			t.Errorf("%s: %d %q", l, aw.Code, aw.Header().Get("Cache-Control"))
		}
		body := aw.Body.Bytes()
		if aw.Header().Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if body, err = io.ReadAll(zr); err != nil {
				t.Fatal(err)
			}
		}
		name := strings.TrimPrefix(l[:strings.Index(l, "?")], "docs/")
		want, _ := fs.ReadFile(pageAssets, "assets/docs/"+name)
		if !bytes.Equal(body, want) {
			t.Errorf("%s: served %d bytes, embedded %d", name, len(body), len(want))
		}
	}

	// the trailing-slash form links its assets relatively
	if links := assetLinks(get(t, h, "/docs/", nil).Body.String()); len(links) == 0 || !strings.HasPrefix(links[0], "./") {
		t.Errorf("from /docs/: %v", links)
	}
	// revalidation and encodings
	aw := get(t, h, "/docs/swagger-ui.css", nil)
	if aw.Header().Get("Content-Encoding") != "" || aw.Header().Get("Cache-Control") != "no-cache" || !strings.HasPrefix(aw.Header().Get("Content-Type"), "text/css") {
		t.Errorf("unversioned css: %v", aw.Header())
	}
	if nw := get(t, h, "/docs/swagger-ui.css", map[string]string{"If-None-Match": aw.Header().Get("ETag")}); nw.Code != http.StatusNotModified {
		t.Errorf("If-None-Match: %d", nw.Code)
	}
	if zw := get(t, h, "/docs/swagger-ui.css", map[string]string{"Accept-Encoding": "gzip;q=0"}); zw.Header().Get("Content-Encoding") != "" {
		t.Error("gzip;q=0 got gzip")
	}
	if lw := get(t, h, "/docs/swagger-ui-LICENSE", nil); !strings.HasPrefix(lw.Header().Get("Content-Type"), "text/plain") {
		t.Errorf("licence served as %q", lw.Header().Get("Content-Type"))
	}

	// under handle_path the handler sees a stripped path: it links and
	// matches by the path the client asked for
	stripped := func(orig, now string) *http.Request {
		o := httptest.NewRequest(http.MethodGet, orig, nil)
		r := httptest.NewRequest(http.MethodGet, now, nil)
		return r.WithContext(context.WithValue(r.Context(), caddyhttp.OriginalRequestCtxKey, *o))
	}
	if sw, err := serveOnce(t, h, stripped("/api/docs", "/")); err != nil || !strings.Contains(sw.Body.String(), `href="docs/docs.css?v=`) {
		t.Errorf("page under a stripped prefix: %v", err)
	}
	if sw, err := serveOnce(t, h, stripped("/api/docs/docs.css", "/docs.css")); err != nil || !strings.HasPrefix(sw.Header().Get("Content-Type"), "text/css") {
		t.Errorf("asset under a stripped prefix: %v %v", err, sw.Header())
	}

	w, err := serveOnce(t, h, httptest.NewRequest(http.MethodPost, "/docs", nil))
	wantCode(t, err, CodeMethodNotAllowed)
	if w.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("Allow = %q", w.Header().Get("Allow"))
	}
	if hw, err := serveOnce(t, h, httptest.NewRequest(http.MethodHead, "/docs", nil)); err != nil || hw.Code != 200 || hw.Body.Len() != 0 {
		t.Errorf("HEAD: %d %v", hw.Code, err)
	}
}

func TestScrapeDashboardServeHTTP(t *testing.T) {
	h := provisioned(t, &ScrapeDashboard{DocsURL: "-", WSURL: "wss://gw.example.com/ws"})
	w := get(t, h, "/dashboard", nil)
	page := w.Body.String()
	if w.Code != 200 || w.Header().Get("Content-Security-Policy") == "" {
		t.Fatalf("GET /dashboard: %d", w.Code)
	}
	for _, want := range []string{`data-ws-url="wss://gw.example.com/ws"`, `data-status-url="/status"`, `data-scrape-url="/scrape"`, `id="run-echo"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if strings.Contains(page, "API docs") {
		t.Error("docs_url off still links the docs")
	}
	links := assetLinks(page)
	if len(links) != 2 {
		t.Fatalf("asset links = %v", links)
	}
	for _, l := range links {
		if aw := get(t, h, "/"+l, nil); aw.Code != 200 || aw.Body.Len() == 0 {
			t.Errorf("%s: %d", l, aw.Code)
		}
	}
	h2 := provisioned(t, &ScrapeDashboard{ScrapeURL: "-"})
	if page := get(t, h2, "/dashboard/", nil).Body.String(); strings.Contains(page, "run-echo") || !strings.Contains(page, `href="/docs"`) {
		t.Error("scrape_url off still shows the echo button, or the docs link is missing")
	}
}

func TestPageValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    caddy.Validator
		err  string
	}{
		{"docs ok", &ScrapeDocs{SpecURL: "https://api.example.com/openapi.json", DashboardURL: "-"}, ""},
		{"docs relative", &ScrapeDocs{SpecURL: "openapi.json"}, "spec_url"},
		{"docs script", &ScrapeDocs{SpecURL: "javascript:alert(1)"}, "spec_url"},
		{"docs protocol-relative", &ScrapeDocs{SpecURL: "//evil.example/x"}, "spec_url"},
		{"docs spec off", &ScrapeDocs{SpecURL: "-"}, "spec_url"},
		{"dashboard ok", &ScrapeDashboard{WSURL: "ws://127.0.0.1:8080/ws", StatusURL: "/status", ScrapeURL: "-", DocsURL: "-"}, ""},
		{"dashboard ws quote", &ScrapeDashboard{WSURL: `/ws"><script>`, StatusURL: "/status"}, "ws_url"},
		{"dashboard status off", &ScrapeDashboard{WSURL: "/ws", StatusURL: "-"}, "status_url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.v.Validate()
			if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("Validate() = %v, want %q", err, tc.err)
			}
		})
	}
}

func TestPageCaddyfile(t *testing.T) {
	for _, tc := range []struct {
		name, input string
		want        any
		err         string
	}{
		{name: "docs bare", input: "scrape_docs", want: &ScrapeDocs{}},
		{name: "docs full", input: "scrape_docs {\n spec_url /api/openapi.json\n dashboard_url off\n title \"My API\"\n}",
			want: &ScrapeDocs{SpecURL: "/api/openapi.json", DashboardURL: "-", Title: "My API"}},
		{name: "docs arg", input: "scrape_docs x", err: "wrong argument count"},
		{name: "docs unknown", input: "scrape_docs {\n nope 1\n}", err: "unrecognized subdirective: nope"},
		{name: "docs dup", input: "scrape_docs {\n title a\n title b\n}", err: "duplicate subdirective: title"},
		{name: "docs spec off", input: "scrape_docs {\n spec_url off\n}", err: "spec_url: cannot be off"},
		{name: "docs bad url", input: "scrape_docs {\n spec_url ftp://x/y\n}", err: "neither an absolute path"},
		{name: "docs two values", input: "scrape_docs {\n spec_url /a /b\n}", err: "wrong argument count"},
		{name: "dashboard full", input: "scrape_dashboard {\n ws_url wss://gw.example.com/ws\n status_url /s\n scrape_url off\n docs_url /d\n title T\n}",
			want: &ScrapeDashboard{WSURL: "wss://gw.example.com/ws", StatusURL: "/s", ScrapeURL: "-", DocsURL: "/d", Title: "T"}},
		{name: "dashboard no value", input: "scrape_dashboard {\n ws_url\n}", err: "wrong argument count"},
		{name: "dashboard ws off", input: "scrape_dashboard {\n ws_url off\n}", err: "ws_url: cannot be off"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got caddyfile.Unmarshaler = new(ScrapeDocs)
			if strings.HasPrefix(tc.input, "scrape_dashboard") {
				got = new(ScrapeDashboard)
			}
			err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			g, _ := json.Marshal(got)
			w, _ := json.Marshal(tc.want)
			if string(g) != string(w) {
				t.Errorf("got %s, want %s", g, w)
			}
		})
	}
}

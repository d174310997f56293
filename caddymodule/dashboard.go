package caddymodule

import (
	"fmt"
	"html/template"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(new(ScrapeDashboard))
}

// ScrapeDashboard is the http.handlers.scrape_dashboard module: a live page
// of the system at work, fed by the `ws_status` WebSocket. It shows broker
// and gateway health, the queue length, the workers and their scripts,
// calls per second and latency over the last minutes as a chart, and the
// caller's recent tasks with their state, as their events arrive.
//
// The page asks for a token (a JWT or an API key) and keeps it only in the
// browser: in session storage, or in local storage when the user ticks
// "remember". It offers the token to the WebSocket as a
// "bearer.<token>" subprotocol (or, for tokens that cannot be one, as
// the token query parameter) and checks it first with GET status_url.
//
// Every file of the page is embedded in the binary and it loads nothing
// from elsewhere (the chart is drawn by its own script). Mount it on a path
// and everything under it (`handle /dashboard*`). Other methods than GET
// and HEAD fail with 405 METHOD_NOT_ALLOWED.
type ScrapeDashboard struct {
	// The URL of the status WebSocket (ws_status). A path is resolved
	// against the page's origin, with ws: or wss: as the page is http: or
	// https:. Default: /ws.
	WSURL string `json:"ws_url,omitempty"`

	// The URL of the status endpoint (scrape_status), used to check the
	// token and get the first snapshot. Default: /status.
	StatusURL string `json:"status_url,omitempty"`

	// The URL of the scrape endpoint, for the page's "run echo" button.
	// "-" hides the button. Default: /scrape.
	ScrapeURL string `json:"scrape_url,omitempty"`

	// The URL of the API docs page, linked from the header; "-" links
	// none. Default: /docs.
	DocsURL string `json:"docs_url,omitempty"`

	// The title of the page. Default: "scrapegate dashboard".
	Title string `json:"title,omitempty"`

	site *site
}

// CaddyModule returns the Caddy module information.
func (*ScrapeDashboard) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.scrape_dashboard",
		New: func() caddy.Module { return new(ScrapeDashboard) },
	}
}

// Provision fills in the defaults and loads the embedded page.
func (h *ScrapeDashboard) Provision(caddy.Context) error {
	for _, f := range []struct {
		v   *string
		def string
	}{
		{&h.WSURL, DefaultPaths[EndpointWS]},
		{&h.StatusURL, DefaultPaths[EndpointStatus]},
		{&h.ScrapeURL, DefaultPaths[EndpointScrape]},
		{&h.DocsURL, DefaultPaths[EndpointDocs]},
		{&h.Title, "scrapegate dashboard"},
	} {
		if *f.v == "" {
			*f.v = f.def
		}
	}
	s, err := dashboardSite()
	if err != nil {
		return fmt.Errorf("loading the dashboard page: %v", err)
	}
	h.site = s
	return nil
}

// Validate checks the URLs.
func (h *ScrapeDashboard) Validate() error {
	for _, f := range []struct {
		name, v  string
		optional bool
	}{
		{"ws_url", h.WSURL, false},
		{"status_url", h.StatusURL, false},
		{"scrape_url", h.ScrapeURL, true},
		{"docs_url", h.DocsURL, true},
	} {
		if err := checkPageURL(f.name, f.v, f.optional); err != nil {
			return err
		}
	}
	return nil
}

// ServeHTTP answers the page or one of its assets.
func (h *ScrapeDashboard) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	// The URLs were checked by Validate (paths, http(s) or ws(s) URLs):
	// html/template may use them as they are.
	opt := func(v string) template.URL {
		if v == "-" {
			return ""
		}
		return template.URL(v) //nolint:gosec // checked by Validate
	}
	return h.site.serve(w, r, map[string]any{
		"Title":     h.Title,
		"WSURL":     opt(h.WSURL),
		"StatusURL": opt(h.StatusURL),
		"ScrapeURL": opt(h.ScrapeURL),
		"DocsURL":   opt(h.DocsURL),
		"Version":   BuildVersion(),
	})
}

// Interface guards
var (
	_ caddy.Provisioner           = (*ScrapeDashboard)(nil)
	_ caddy.Validator             = (*ScrapeDashboard)(nil)
	_ caddyhttp.MiddlewareHandler = (*ScrapeDashboard)(nil)
)

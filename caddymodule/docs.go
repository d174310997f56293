package caddymodule

import (
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(new(ScrapeDocs))
}

// ScrapeDocs is the http.handlers.scrape_docs module: a self-contained page
// to read the API and try it, Swagger UI over the OpenAPI document of
// `scrape_openapi`, with a token field whose token is kept only in the
// browser's session storage and sent with every "try it" call (a JWT as
// `Authorization: Bearer`, anything else as `X-API-Key`).
//
// Every file of the page is embedded in the binary (Swagger UI from the
// pinned npm package swagger-ui-dist, see assets/README.md), so it works
// with no internet access; its Content-Security-Policy forbids loading
// anything from elsewhere. Mount it on a path and everything under it
// (`handle /docs*`): the page is served at any path the handler gets, and
// its assets under it (/docs/swagger-ui.css, ...). Other methods than GET
// and HEAD fail with 405 METHOD_NOT_ALLOWED.
type ScrapeDocs struct {
	// The URL of the OpenAPI document the page shows. Default: /openapi.json.
	SpecURL string `json:"spec_url,omitempty"`

	// The URL of the dashboard, linked from the page's header; "off" (or
	// "-" in JSON) links none. Default: /dashboard.
	DashboardURL string `json:"dashboard_url,omitempty"`

	// The title of the page. Default: "scrapegate API".
	Title string `json:"title,omitempty"`

	site *site
}

// CaddyModule returns the Caddy module information.
func (*ScrapeDocs) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.scrape_docs",
		New: func() caddy.Module { return new(ScrapeDocs) },
	}
}

// Provision fills in the defaults and loads the embedded page.
func (h *ScrapeDocs) Provision(caddy.Context) error {
	if h.SpecURL == "" {
		h.SpecURL = DefaultPaths[EndpointOpenAPI]
	}
	if h.DashboardURL == "" {
		h.DashboardURL = DefaultPaths[EndpointDashboard]
	}
	if h.Title == "" {
		h.Title = "scrapegate API"
	}
	s, err := docsSite()
	if err != nil {
		return fmt.Errorf("loading the docs page: %v", err)
	}
	h.site = s
	return nil
}

// Validate checks the URLs.
func (h *ScrapeDocs) Validate() error {
	if err := checkPageURL("spec_url", h.SpecURL, false); err != nil {
		return err
	}
	return checkPageURL("dashboard_url", h.DashboardURL, true)
}

// ServeHTTP answers the page or one of its assets.
func (h *ScrapeDocs) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	// The URLs were checked by Validate (paths, http(s) URLs): html/template
	// may use them as they are.
	dash := template.URL(h.DashboardURL) //nolint:gosec // checked by Validate
	if dash == "-" {
		dash = ""
	}
	return h.site.serve(w, r, map[string]any{
		"Title":        h.Title,
		"SpecURL":      template.URL(h.SpecURL), //nolint:gosec // checked by Validate
		"DashboardURL": dash,
		"Version":      BuildVersion(),
	})
}

// checkPageURL checks a URL a page links or calls: an absolute path, or an
// http(s) or ws(s) URL; "-" (no link) when optional.
func checkPageURL(field, v string, optional bool) error {
	if v == "" || (optional && v == "-") {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || strings.ContainsAny(v, " \"'<>`") {
		return fmt.Errorf("%s: %q is not a URL", field, v)
	}
	switch {
	case u.Scheme == "" && u.Host == "" && strings.HasPrefix(v, "/") && !strings.HasPrefix(v, "//"):
		return nil
	case (u.Scheme == "http" || u.Scheme == "https" || u.Scheme == "ws" || u.Scheme == "wss") && u.Host != "":
		return nil
	}
	return fmt.Errorf("%s: %q is neither an absolute path nor an http(s) or ws(s) URL", field, v)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*ScrapeDocs)(nil)
	_ caddy.Validator             = (*ScrapeDocs)(nil)
	_ caddyhttp.MiddlewareHandler = (*ScrapeDocs)(nil)
)

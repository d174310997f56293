package caddymodule

import (
	"encoding/json"
	"fmt"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(new(ScrapeInfo))
	httpcaddyfile.RegisterHandlerDirective("scrape_info", parseHandler[ScrapeInfo])
	httpcaddyfile.RegisterDirectiveOrder("scrape_info", httpcaddyfile.Before, "respond")
}

// Name is the product's name, as GET / reports it.
const Name = "scrapegate"

// Version is the version of this build: set it with
// -ldflags "-X github.com/scrapegate/scrapegate/caddymodule.Version=v1.2.3";
// when unset, BuildVersion returns the module version from the build info.
var Version = ""

// BuildVersion returns Version, or the version of this module in the build
// info (a tagged version, or "(devel)" for a build from a checkout).
var BuildVersion = sync.OnceValue(func() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range append([]*debug.Module{&bi.Main}, bi.Deps...) {
			if m.Path == "github.com/scrapegate/scrapegate" && m.Version != "" {
				return m.Version
			}
		}
	}
	return "(devel)"
})

// ScrapeInfo is the `scrape_info` handler: GET / answers the product's name,
// version and status ("ok" while the broker link is up, "degraded" while it
// is down) as InfoResponse. Other methods are a 405. It never calls next.
type ScrapeInfo struct {
	app *App
}

// CaddyModule returns the Caddy module information.
func (*ScrapeInfo) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.scrape_info",
		New: func() caddy.Module { return new(ScrapeInfo) },
	}
}

// Provision gets the scrapegate app, whose link it reports on.
func (h *ScrapeInfo) Provision(ctx caddy.Context) error {
	appVal, err := ctx.App(AppID)
	if err != nil {
		return fmt.Errorf("loading scrapegate app: %v", err)
	}
	h.app = appVal.(*App)
	return nil
}

// ServeHTTP answers GET and HEAD.
func (h *ScrapeInfo) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return Error(CodeMethodNotAllowed, "use GET", nil)
	}
	status := "ok"
	if !h.app.Client().Connected() {
		status = "degraded"
	}
	body, err := json.Marshal(InfoResponse{Name: Name, Version: BuildVersion(), Status: status})
	if err != nil {
		return Error(CodeInternalError, "", fmt.Errorf("encoding info: %w", err))
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json; charset=utf-8")
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
	return nil
}

// UnmarshalCaddyfile checks that the directive has no arguments or block.
// Syntax:
//
//	scrape_info [<matcher>]
func (h *ScrapeInfo) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return unmarshalNoArgs(d)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*ScrapeInfo)(nil)
	_ caddyhttp.MiddlewareHandler = (*ScrapeInfo)(nil)
	_ caddyfile.Unmarshaler       = (*ScrapeInfo)(nil)
)

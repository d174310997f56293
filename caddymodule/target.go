package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/idna"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/scrapegate/scrapegate/internal/jsonraw"
)

func init() {
	caddy.RegisterModule(new(ScrapeTarget))
	httpcaddyfile.RegisterHandlerDirective("scrape_target", parseHandler[ScrapeTarget])
	// before rate_limit (which sits before basic_auth) when both are
	// registered in this order; the example Caddyfile orders it explicitly
	httpcaddyfile.RegisterDirectiveOrder("scrape_target", httpcaddyfile.Before, "basic_auth")
}

// TargetHostPlaceholder is the placeholder scrape_target sets.
const TargetHostPlaceholder = "http.scrape.target_host"

// ScrapeTarget is the `scrape_target` handler (`http.handlers.scrape_target`):
// it reads the JSON body of a POST /scrape request and exposes the host of
// parameters.url, the website to be scraped, so that a rate_limit zone can
// key on it (caddy-ratelimit keys cannot read a body). It sets:
//
//	placeholder                 value
//	{http.scrape.target_host}   the host of parameters.url: lowercased, IDNA
//	                            ASCII form, without port or trailing dot;
//	                            empty when there is none
//
// The body is decoded the way scrape_rpc decodes it (exact names: the
// "url" member of the "parameters" object; of duplicate names the last one)
// and is always restored, byte for byte, for the next handler. A body that
// is not JSON, not an object, larger than max_body, or has no
// parameters.url string that is an absolute URL with a host leaves the
// placeholder empty and passes through untouched, so that scrape_rpc
// reports what is wrong with it. Requests without a body are passed on at
// once.
type ScrapeTarget struct {
	// The largest body read, in bytes. A larger body is passed on unread
	// (the placeholder is empty); keep it at least scrape_rpc's max_body.
	// Default: 1 MiB.
	MaxBody int64 `json:"max_body,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (*ScrapeTarget) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.scrape_target",
		New: func() caddy.Module { return new(ScrapeTarget) },
	}
}

// Provision fills in defaults.
func (h *ScrapeTarget) Provision(caddy.Context) error {
	if h.MaxBody == 0 {
		h.MaxBody = 1 << 20
	}
	return nil
}

// Validate checks the configuration.
func (h *ScrapeTarget) Validate() error {
	if h.MaxBody < 0 {
		return errors.New("max_body: must not be negative")
	}
	return nil
}

// ServeHTTP sets {http.scrape.target_host} and calls next with the body
// restored.
func (h *ScrapeTarget) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	repl.Set(TargetHostPlaceholder, "")
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength > h.MaxBody {
		return next.ServeHTTP(w, r)
	}
	// not a pooled buffer: the restored body belongs to the request, which
	// handle_errors routes may read after this handler returned
	buf, err := io.ReadAll(io.LimitReader(r.Body, h.MaxBody+1))
	r.Body = restoredBody{Reader: io.MultiReader(bytes.NewReader(buf), r.Body), Closer: r.Body}
	if err == nil && int64(len(buf)) <= h.MaxBody {
		repl.Set(TargetHostPlaceholder, targetHost(buf))
	}
	return next.ServeHTTP(w, r)
}

// restoredBody is a request body put back together after it was read.
type restoredBody struct {
	io.Reader
	io.Closer
}

// targetHost returns the normalized host of parameters.url in a /scrape
// body, or "" when there is none. It scans the raw JSON (as scrape_rpc
// does) instead of decoding it into maps: this runs on every call.
func targetHost(body []byte) string {
	if !json.Valid(body) {
		return ""
	}
	var params, rawURL []byte
	jsonraw.ScanObject(body, func(key, raw []byte) {
		if string(key) == "parameters" {
			params = raw
		}
	})
	if params == nil {
		return ""
	}
	jsonraw.ScanObject(params, func(key, raw []byte) {
		if string(key) == "url" {
			rawURL = raw
		}
	})
	u, ok := jsonraw.String(rawURL)
	if !ok {
		return ""
	}
	return normalizeHost(u)
}

// normalizeHost returns the host of an absolute URL in the form a rate
// limit keys on: lowercase, IDNA ASCII, no port, no trailing dot.
func normalizeHost(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Scheme == "" {
		return ""
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if host == "" || len(host) > 253 {
		return ""
	}
	if ascii, err := idna.Lookup.ToASCII(host); err == nil {
		host = ascii
	}
	return host
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	scrape_target [<matcher>] {
//		max_body <size>    # default 1MiB
//	}
func (h *ScrapeTarget) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "max_body":
			if h.MaxBody != 0 {
				return d.Errf("duplicate subdirective: max_body")
			}
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			size, err := sizeArg(v)
			if err != nil || size <= 0 {
				return d.Errf("max_body: invalid size %q", v)
			}
			h.MaxBody = size
		default:
			return d.Errf("unrecognized subdirective: %s", d.Val())
		}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*ScrapeTarget)(nil)
	_ caddy.Validator             = (*ScrapeTarget)(nil)
	_ caddyhttp.MiddlewareHandler = (*ScrapeTarget)(nil)
	_ caddyfile.Unmarshaler       = (*ScrapeTarget)(nil)
)

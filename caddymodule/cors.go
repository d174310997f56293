package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(new(CORS))
	httpcaddyfile.RegisterHandlerDirective("scrape_cors", parseHandler[CORS])
	httpcaddyfile.RegisterDirectiveOrder("scrape_cors", httpcaddyfile.Before, "header")
}

// Defaults of CORS.
var (
	DefaultCORSMethods = []string{"GET", "POST", "OPTIONS"}
	DefaultCORSHeaders = []string{"Authorization", "X-API-Key", "Content-Type", "Accept-Language"}
	DefaultCORSExpose  = []string{"Retry-After", "WWW-Authenticate", "Content-Language"}
	DefaultCORSMaxAge  = 10 * time.Minute
)

// CORS is the `scrape_cors` handler (`http.handlers.scrape_cors`): Cross-
// Origin Resource Sharing for browser clients of the API.
//
// A request whose Origin is allowed gets Access-Control-Allow-Origin (that
// origin), Access-Control-Expose-Headers and, with allow_credentials,
// Access-Control-Allow-Credentials: true. Every response gets
// `Vary: Origin`. A preflight (OPTIONS with Origin and
// Access-Control-Request-Method) is answered here: 204 with the allowed
// methods and headers (Authorization, X-API-Key, Content-Type,
// Accept-Language) and Access-Control-Max-Age when the origin is allowed,
// 403 FORBIDDEN when it is not; it never reaches authentication. Requests
// from origins not allowed are passed on without CORS headers (the browser
// then withholds the response from the page).
//
// The origin "*" allows every origin and is answered with a literal
// `Access-Control-Allow-Origin: *`; it cannot be combined with
// allow_credentials (a config error), so a wildcard never goes out with
// credentials. Credentials (cookies, TLS client certificates) are not
// needed for bearer tokens or API keys, which a page sends in headers.
type CORS struct {
	// The allowed origins: scheme://host[:port], compared without regard to
	// case, or "*". Entries may hold several origins separated by spaces
	// or commas (handy for an environment variable).
	AllowedOrigins []string `json:"allowed_origins,omitempty"`

	// Whether to send Access-Control-Allow-Credentials: true. Default: false.
	AllowCredentials bool `json:"allow_credentials,omitempty"`

	// Methods allowed in preflights. Default: GET, POST, OPTIONS.
	AllowedMethods []string `json:"allowed_methods,omitempty"`

	// Request headers allowed in preflights. Default: Authorization,
	// X-API-Key, Content-Type, Accept-Language.
	AllowedHeaders []string `json:"allowed_headers,omitempty"`

	// Response headers a page may read. Default: Retry-After,
	// WWW-Authenticate, Content-Language.
	ExposedHeaders []string `json:"exposed_headers,omitempty"`

	// How long a browser may cache a preflight answer. Default: 10m.
	MaxAge caddy.Duration `json:"max_age,omitempty"`

	origins  map[string]bool
	wildcard bool
}

// CaddyModule returns the Caddy module information.
func (*CORS) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.scrape_cors",
		New: func() caddy.Module { return new(CORS) },
	}
}

// Provision fills in defaults and normalizes the origins.
func (h *CORS) Provision(caddy.Context) error {
	if len(h.AllowedMethods) == 0 {
		h.AllowedMethods = DefaultCORSMethods
	}
	if len(h.AllowedHeaders) == 0 {
		h.AllowedHeaders = DefaultCORSHeaders
	}
	if len(h.ExposedHeaders) == 0 {
		h.ExposedHeaders = DefaultCORSExpose
	}
	if h.MaxAge == 0 {
		h.MaxAge = caddy.Duration(DefaultCORSMaxAge)
	}
	h.origins = make(map[string]bool)
	for _, entry := range h.AllowedOrigins {
		for _, o := range strings.FieldsFunc(entry, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' }) {
			if o == "*" {
				h.wildcard = true
				continue
			}
			norm, err := normalizeOrigin(o)
			if err != nil {
				return fmt.Errorf("allowed_origins: %q: %v", o, err)
			}
			h.origins[norm] = true
		}
	}
	return nil
}

// Validate checks the configuration.
func (h *CORS) Validate() error {
	if h.wildcard && h.AllowCredentials {
		return errors.New("allowed_origins \"*\" cannot be combined with allow_credentials")
	}
	if !h.wildcard && len(h.origins) == 0 {
		return errors.New("allowed_origins: at least one origin is required")
	}
	if h.MaxAge < 0 {
		return errors.New("max_age: must not be negative")
	}
	return nil
}

// ServeHTTP answers preflights and adds CORS headers to other responses.
func (h *CORS) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	hdr := w.Header()
	hdr.Add("Vary", "Origin")
	origin := r.Header.Get("Origin")
	preflight := r.Method == http.MethodOptions && origin != "" && r.Header.Get("Access-Control-Request-Method") != ""
	if preflight {
		hdr.Add("Vary", "Access-Control-Request-Method")
		hdr.Add("Vary", "Access-Control-Request-Headers")
	}
	if origin == "" {
		return next.ServeHTTP(w, r)
	}
	allowed := h.allows(origin)
	if allowed {
		if h.wildcard {
			hdr.Set("Access-Control-Allow-Origin", "*")
		} else {
			hdr.Set("Access-Control-Allow-Origin", origin)
		}
		if h.AllowCredentials {
			hdr.Set("Access-Control-Allow-Credentials", "true")
		}
	}
	if !preflight {
		if allowed {
			hdr.Set("Access-Control-Expose-Headers", strings.Join(h.ExposedHeaders, ", "))
		}
		return next.ServeHTTP(w, r)
	}
	if !allowed {
		return Error(CodeForbidden, "origin not allowed", nil)
	}
	hdr.Set("Access-Control-Allow-Methods", strings.Join(h.AllowedMethods, ", "))
	hdr.Set("Access-Control-Allow-Headers", strings.Join(h.AllowedHeaders, ", "))
	hdr.Set("Access-Control-Max-Age", strconv.FormatInt(int64(time.Duration(h.MaxAge)/time.Second), 10))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// allows reports whether origin may read responses.
func (h *CORS) allows(origin string) bool {
	if h.wildcard {
		return true
	}
	norm, err := normalizeOrigin(origin)
	return err == nil && h.origins[norm]
}

// normalizeOrigin checks that o is a serialized origin (scheme://host[:port],
// no path) and lowercases it.
func normalizeOrigin(o string) (string, error) {
	u, err := url.Parse(o)
	switch {
	case err != nil:
		return "", errors.New("not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return "", errors.New("scheme must be http or https")
	case u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return "", errors.New("want scheme://host[:port]")
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	scrape_cors [<matcher>] [<origins...>] {
//		origins           <origins...>
//		allow_credentials
//		methods           <methods...>
//		headers           <headers...>
//		expose            <headers...>
//		max_age           <duration>
//	}
//
// Origins are scheme://host[:port] or "*"; `scrape_cors {$CORS_ORIGINS}`
// takes a space-separated list from the environment.
func (h *CORS) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	h.AllowedOrigins = append(h.AllowedOrigins, d.RemainingArgs()...)
	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		if seen[name] {
			return d.Errf("duplicate subdirective: %s", name)
		}
		seen[name] = true
		switch name {
		case "allow_credentials":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.AllowCredentials = true
		case "max_age":
			var v string
			if !d.AllArgs(&v) {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil {
				return d.Errf("max_age: invalid duration %q: %v", v, err)
			}
			h.MaxAge = caddy.Duration(dur)
		case "origins", "methods", "headers", "expose":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			switch name {
			case "origins":
				h.AllowedOrigins = append(h.AllowedOrigins, args...)
			case "methods":
				h.AllowedMethods = args
			case "headers":
				h.AllowedHeaders = args
			case "expose":
				h.ExposedHeaders = args
			}
		default:
			return d.Errf("unrecognized subdirective: %s", name)
		}
	}
	if len(h.AllowedOrigins) == 0 {
		return d.Err("scrape_cors needs at least one origin")
	}
	if slices.Contains(h.AllowedOrigins, "*") && h.AllowCredentials {
		return d.Err(`scrape_cors: origin "*" cannot be combined with allow_credentials`)
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*CORS)(nil)
	_ caddy.Validator             = (*CORS)(nil)
	_ caddyhttp.MiddlewareHandler = (*CORS)(nil)
	_ caddyfile.Unmarshaler       = (*CORS)(nil)
)

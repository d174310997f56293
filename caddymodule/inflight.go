package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(new(InFlight))
	httpcaddyfile.RegisterHandlerDirective("scrape_in_flight", parseHandler[InFlight])
	// after the authentication handlers and rate_limit (both before
	// basic_auth); the example Caddyfile orders it explicitly
	httpcaddyfile.RegisterDirectiveOrder("scrape_in_flight", httpcaddyfile.After, "basic_auth")
}

// Defaults of InFlight.
const (
	DefaultInFlightKey  = "{http.auth.user.id}"
	DefaultInFlightZone = "default"
)

// inFlightZones holds the counters of calls in flight by zone name. They
// outlive config reloads: the new config finds the counter the old one
// still counts its calls in, so the cap holds across a reload.
var inFlightZones = caddy.NewUsagePool()

// InFlight is the `scrape_in_flight` handler (`http.handlers.scrape_in_flight`):
// a cap on the calls one client has in flight at once (caddy-ratelimit
// counts requests per window, not concurrency). A request over the cap is
// refused at once with 429 TOO_MANY_IN_FLIGHT and `Retry-After: 1`;
// otherwise the call counts until the rest of the chain returns.
//
// Clients are told apart by key, by default {http.auth.user.id}, so the
// handler belongs after jwt_auth; requests whose key is empty share one
// count. Counts live in a zone shared by every scrape_in_flight handler of
// that zone name and kept across config reloads.
type InFlight struct {
	// The most calls one key may have in flight at once. Required; at
	// least 1.
	Max int `json:"max,omitempty"`

	// What tells clients apart; placeholders are expanded per request.
	// Default: {http.auth.user.id}.
	Key string `json:"key,omitempty"`

	// The name of the zone whose counts this handler shares. Default:
	// default.
	Zone string `json:"zone,omitempty"`

	counter *inFlightCounter
}

// CaddyModule returns the Caddy module information.
func (*InFlight) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.scrape_in_flight",
		New: func() caddy.Module { return new(InFlight) },
	}
}

// Provision fills in defaults and joins the zone's counter.
func (h *InFlight) Provision(caddy.Context) error {
	if h.Key == "" {
		h.Key = DefaultInFlightKey
	}
	if h.Zone == "" {
		h.Zone = DefaultInFlightZone
	}
	val, _ := inFlightZones.LoadOrStore(h.Zone, &inFlightCounter{counts: make(map[string]int)})
	h.counter = val.(*inFlightCounter)
	return nil
}

// Validate checks the configuration.
func (h *InFlight) Validate() error {
	if h.Max < 1 {
		return errors.New("max: must be at least 1")
	}
	return nil
}

// ServeHTTP counts the call while next serves it, or refuses it.
func (h *InFlight) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	key := repl.ReplaceAll(h.Key, "")
	if !h.counter.acquire(key, h.Max) {
		w.Header().Set("Retry-After", "1")
		return Error(CodeTooManyInFlight, fmt.Sprintf("at most %d calls in flight per client", h.Max), nil)
	}
	defer h.counter.release(key)
	return next.ServeHTTP(w, r)
}

// Cleanup leaves the zone; its counter goes when the last handler leaves.
func (h *InFlight) Cleanup() error {
	if h.counter != nil {
		_, _ = inFlightZones.Delete(h.Zone)
	}
	return nil
}

// inFlightCounter counts calls in flight by key.
type inFlightCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

// acquire counts one more call of key unless key has max already.
func (c *inFlightCounter) acquire(key string, max int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts[key] >= max {
		return false
	}
	c.counts[key]++
	return true
}

// release counts one call of key less.
func (c *inFlightCounter) release(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts[key] <= 1 {
		delete(c.counts, key)
		return
	}
	c.counts[key]--
}

// inFlight returns the count of key.
func (c *inFlightCounter) inFlight(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[key]
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	scrape_in_flight [<matcher>] <max> {
//		key  <placeholder>   # default {http.auth.user.id}
//		zone <name>          # default default
//	}
func (h *InFlight) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	var maxArg string
	if !d.AllArgs(&maxArg) {
		return d.ArgErr()
	}
	n, err := strconv.Atoi(maxArg)
	if err != nil || n < 1 {
		return d.Errf("invalid maximum of calls in flight %q: want an integer of at least 1", maxArg)
	}
	h.Max = n
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var dst *string
		switch d.Val() {
		case "key":
			dst = &h.Key
		case "zone":
			dst = &h.Zone
		default:
			return d.Errf("unrecognized subdirective: %s", d.Val())
		}
		if *dst != "" {
			return d.Errf("duplicate subdirective: %s", d.Val())
		}
		if !d.AllArgs(dst) {
			return d.ArgErr()
		}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*InFlight)(nil)
	_ caddy.Validator             = (*InFlight)(nil)
	_ caddy.CleanerUpper          = (*InFlight)(nil)
	_ caddyhttp.MiddlewareHandler = (*InFlight)(nil)
	_ caddyfile.Unmarshaler       = (*InFlight)(nil)
)

package caddymodule

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("scrape_health", parseScrapeHealth)
	httpcaddyfile.RegisterDirectiveOrder("scrape_health", httpcaddyfile.Before, "respond")
}

// parseScrapeHealth sets up the handler from Caddyfile tokens.
func parseScrapeHealth(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(ScrapeHealth)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile parses the directive, which takes no arguments and no
// block. Syntax:
//
//	scrape_health
func (h *ScrapeHealth) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		return d.Errf("unrecognized subdirective: %s", d.Val())
	}
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*ScrapeHealth)(nil)

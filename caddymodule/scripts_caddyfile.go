package caddymodule

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("scrape_scripts", parseScrapeScripts)
	httpcaddyfile.RegisterDirectiveOrder("scrape_scripts", httpcaddyfile.Before, "respond")
}

// parseScrapeScripts builds the scrape_scripts handler from its directive.
func parseScrapeScripts(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	s := new(ScrapeScripts)
	if err := s.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return s, nil
}

// UnmarshalCaddyfile checks that the directive has no arguments or block.
// Syntax:
//
//	scrape_scripts [<matcher>]
func (h *ScrapeScripts) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
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
var _ caddyfile.Unmarshaler = (*ScrapeScripts)(nil)

package caddymodule

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("scrape_health", parseHandler[ScrapeHealth])
	httpcaddyfile.RegisterDirectiveOrder("scrape_health", httpcaddyfile.Before, "respond")
}

// UnmarshalCaddyfile parses the directive, which takes no arguments and no
// block. Syntax:
//
//	scrape_health
func (h *ScrapeHealth) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return unmarshalNoArgs(d)
}

// Interface guard
var _ caddyfile.Unmarshaler = (*ScrapeHealth)(nil)

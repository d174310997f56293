package caddymodule

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("scrape_scripts", parseHandler[ScrapeScripts])
	httpcaddyfile.RegisterDirectiveOrder("scrape_scripts", httpcaddyfile.Before, "respond")
}

// UnmarshalCaddyfile checks that the directive has no arguments or block.
// Syntax:
//
//	scrape_scripts [<matcher>]
func (h *ScrapeScripts) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return unmarshalNoArgs(d)
}

// Interface guard
var _ caddyfile.Unmarshaler = (*ScrapeScripts)(nil)

package caddymodule

import (
	"github.com/dustin/go-humanize"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("scrape_rpc", parseHandler[ScrapeRPC])
	// after rate_limit (which sits before basic_auth), so limits apply
	// first; deployments with other plugins should still say
	// `order scrape_rpc after ...` explicitly (see doc.go)
	httpcaddyfile.RegisterDirectiveOrder("scrape_rpc", httpcaddyfile.Before, "reverse_proxy")
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	scrape_rpc [<matcher>] {
//		max_body        <size>
//		default_timeout <duration>
//		max_timeout     <duration>
//	}
//
// Sizes take units (1MiB, 512KB) or plain bytes; durations are whole
// seconds (300s, 1h). Every subdirective is optional and may appear once.
func (h *ScrapeRPC) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		switch name {
		case "max_body", "default_timeout", "max_timeout":
		default:
			return d.Errf("unrecognized subdirective: %s", name)
		}
		if seen[name] {
			return d.Errf("duplicate subdirective: %s", name)
		}
		seen[name] = true
		var val string
		if !d.AllArgs(&val) {
			return d.ArgErr()
		}
		switch name {
		case "max_body":
			n, err := humanize.ParseBytes(val)
			if err != nil || n == 0 || n > 1<<40 {
				return d.Errf("max_body: bad size %q", val)
			}
			h.MaxBody = int64(n)
		case "default_timeout", "max_timeout":
			dur, err := caddy.ParseDuration(val)
			if err != nil {
				return d.Errf("%s: bad duration %q: %v", name, val, err)
			}
			if dur <= 0 {
				return d.Errf("%s: must be positive, got %q", name, val)
			}
			if name == "default_timeout" {
				h.DefaultTimeout = caddy.Duration(dur)
			} else {
				h.MaxTimeout = caddy.Duration(dur)
			}
		}
	}
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*ScrapeRPC)(nil)

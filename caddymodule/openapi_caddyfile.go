package caddymodule

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("scrape_openapi", parseHandler[ScrapeOpenAPI])
	httpcaddyfile.RegisterDirectiveOrder("scrape_openapi", httpcaddyfile.Before, "respond")
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	scrape_openapi [<matcher>] {
//		title  <text>
//		server <url> [<description>]
//		path   <endpoint> <path>|off
//	}
//
// title may appear once; server and path may repeat (path once per
// endpoint). Endpoints are info, health, scrape, ws, status, scripts,
// openapi, docs, dashboard and metrics; `off` leaves one out.
func (h *ScrapeOpenAPI) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seenTitle := false
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "title":
			if seenTitle {
				return d.Err("duplicate subdirective: title")
			}
			seenTitle = true
			if !d.AllArgs(&h.Title) || h.Title == "" {
				return d.ArgErr()
			}
		case "server":
			args := d.RemainingArgs()
			if len(args) < 1 || len(args) > 2 || args[0] == "" {
				return d.ArgErr()
			}
			s := OpenAPIServer{URL: args[0]}
			if len(args) == 2 {
				s.Description = args[1]
			}
			h.Servers = append(h.Servers, s)
		case "path":
			var ep, p string
			if !d.AllArgs(&ep, &p) {
				return d.ArgErr()
			}
			if _, ok := DefaultPaths[ep]; !ok {
				return d.Errf("path: unknown endpoint %q", ep)
			}
			if _, dup := h.Paths[ep]; dup {
				return d.Errf("path: duplicate endpoint %q", ep)
			}
			if p == "off" {
				p = ""
			} else if len(p) == 0 || p[0] != '/' {
				return d.Errf("path: %s: %q is not an absolute path", ep, p)
			}
			if h.Paths == nil {
				h.Paths = make(map[string]string)
			}
			h.Paths[ep] = p
		default:
			return d.Errf("unrecognized subdirective: %s", d.Val())
		}
	}
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*ScrapeOpenAPI)(nil)

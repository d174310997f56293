package caddymodule

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("scrape_docs", parseHandler[ScrapeDocs])
	httpcaddyfile.RegisterDirectiveOrder("scrape_docs", httpcaddyfile.Before, "respond")
	httpcaddyfile.RegisterHandlerDirective("scrape_dashboard", parseHandler[ScrapeDashboard])
	httpcaddyfile.RegisterDirectiveOrder("scrape_dashboard", httpcaddyfile.Before, "respond")
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	scrape_docs [<matcher>] {
//		spec_url      <url>
//		dashboard_url <url>|off
//		title         <text>
//	}
//
// Every subdirective is optional and may appear once.
func (h *ScrapeDocs) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return unmarshalPageBlock(d, map[string]*string{
		"spec_url":      &h.SpecURL,
		"dashboard_url": &h.DashboardURL,
		"title":         &h.Title,
	}, map[string]bool{"dashboard_url": true})
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	scrape_dashboard [<matcher>] {
//		ws_url     <url>
//		status_url <url>
//		scrape_url <url>|off
//		docs_url   <url>|off
//		title      <text>
//	}
//
// Every subdirective is optional and may appear once.
func (h *ScrapeDashboard) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return unmarshalPageBlock(d, map[string]*string{
		"ws_url":     &h.WSURL,
		"status_url": &h.StatusURL,
		"scrape_url": &h.ScrapeURL,
		"docs_url":   &h.DocsURL,
		"title":      &h.Title,
	}, map[string]bool{"scrape_url": true, "docs_url": true})
}

// unmarshalPageBlock parses a directive without arguments whose block sets
// string fields, each once with one value; the fields in offable take
// "off", stored as "-".
func unmarshalPageBlock(d *caddyfile.Dispenser, fields map[string]*string, offable map[string]bool) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		field, ok := fields[name]
		if !ok {
			return d.Errf("unrecognized subdirective: %s", name)
		}
		if seen[name] {
			return d.Errf("duplicate subdirective: %s", name)
		}
		seen[name] = true
		var v string
		if !d.AllArgs(&v) || v == "" {
			return d.ArgErr()
		}
		if v == "off" {
			if !offable[name] {
				return d.Errf("%s: cannot be off", name)
			}
			v = "-"
		}
		if name != "title" {
			if err := checkPageURL(name, v, offable[name]); err != nil {
				return d.Err(err.Error())
			}
		}
		*field = v
	}
	return nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*ScrapeDocs)(nil)
	_ caddyfile.Unmarshaler = (*ScrapeDashboard)(nil)
)

package caddymodule

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// caddyfileHandler is a handler that sets itself up from its Caddyfile
// directive.
type caddyfileHandler[T any] interface {
	*T
	caddyhttp.MiddlewareHandler
	caddyfile.Unmarshaler
}

// parseHandler is the httpcaddyfile parser of every directive whose handler
// unmarshals itself: a new T, set up from the directive's tokens.
func parseHandler[T any, P caddyfileHandler[T]](h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	handler := P(new(T))
	if err := handler.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return handler, nil
}

// unmarshalNoArgs consumes a directive that takes no arguments and no block,
// and refuses anything more.
func unmarshalNoArgs(d *caddyfile.Dispenser) error {
	return eachSubdirective(d, func(name string) error {
		return d.Errf("unrecognized subdirective: %s", name)
	})
}

// eachSubdirective consumes a directive that takes no arguments and calls fn
// with the name of each subdirective of its optional block, refusing a
// subdirective that appears twice. fn reads the subdirective's arguments
// from d.
func eachSubdirective(d *caddyfile.Dispenser, fn func(name string) error) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		if seen[name] {
			return d.Errf("duplicate subdirective: %s", name)
		}
		seen[name] = true
		if err := fn(name); err != nil {
			return err
		}
	}
	return nil
}

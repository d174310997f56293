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
	d.Next() // consume directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		return d.Errf("unrecognized subdirective: %s", d.Val())
	}
	return nil
}

// Package scrapegate is the root of the scrapegate module. Importing it
// registers scrapegate's Caddy modules, so that a stock Caddy can be built
// with them by xcaddy:
//
//	xcaddy build v2.11.9 --with github.com/scrapegate/scrapegate=. \
//		--with github.com/mholt/caddy-ratelimit@v0.1.0
//
// (see xcaddy.mk). The modules themselves live in package caddymodule.
package scrapegate

import (
	// the app and handlers
	_ "github.com/scrapegate/scrapegate/caddymodule"
)

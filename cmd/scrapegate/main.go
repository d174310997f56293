// Command scrapegate is the scrapegate gateway: Caddy with its standard
// modules, scrapegate's modules and caddy-ratelimit, exactly what
//
//	xcaddy build v2.11.9 --with github.com/scrapegate/scrapegate=. \
//		--with github.com/mholt/caddy-ratelimit@v0.1.0
//
// produces. Every Caddy command works (`scrapegate run --config Caddyfile`,
// `scrapegate list-modules`, `scrapegate reload`, ...), plus those that
// scrapegate's modules register.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// plug in Caddy modules here
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/mholt/caddy-ratelimit"

	_ "github.com/scrapegate/scrapegate"
)

func main() {
	caddycmd.Main()
}

package caddymodule

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("ws_status", parseHandler[WSStatus])
	httpcaddyfile.RegisterDirectiveOrder("ws_status", httpcaddyfile.Before, "respond")
}

// UnmarshalCaddyfile parses the directive. Syntax:
//
//	ws_status {
//		status_interval   <duration>|off
//		buffer            <messages>
//		write_timeout     <duration>
//		ping_interval     <duration>
//		admin_role        <role>
//		origins           <pattern...>
//		close_delay       <duration>
//		max_subscriptions <n>
//		read_limit        <bytes>
//	}
//
// The block is optional; each subdirective may appear once. See WSStatus for
// what each does and its default.
func (h *WSStatus) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return eachSubdirective(d, func(name string) error {
		switch name {
		case "status_interval":
			var val string
			if !d.AllArgs(&val) {
				return d.ArgErr()
			}
			if val == "off" {
				h.StatusInterval = -1
				return nil
			}
			dur, err := caddy.ParseDuration(val)
			if err != nil {
				return d.Errf("%s: bad duration %q: %v", name, val, err)
			}
			if dur <= 0 {
				return d.Errf("%s: must be positive or off, got %q", name, val)
			}
			h.StatusInterval = caddy.Duration(dur)
		case "write_timeout", "ping_interval", "close_delay":
			dur, err := parseDurationArg(d, name, name == "close_delay")
			if err != nil {
				return err
			}
			switch name {
			case "write_timeout":
				h.WriteTimeout = dur
			case "ping_interval":
				h.PingInterval = dur
			default:
				h.CloseDelay = dur
			}
		case "buffer", "max_subscriptions", "read_limit":
			var val string
			if !d.AllArgs(&val) {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 {
				return d.Errf("%s: %q is not a positive integer", name, val)
			}
			switch name {
			case "buffer":
				h.Buffer = n
			case "max_subscriptions":
				h.MaxSubscriptions = n
			default:
				h.ReadLimit = int64(n)
			}
		case "admin_role":
			var val string
			if !d.AllArgs(&val) {
				return d.ArgErr()
			}
			h.AdminRole = val
		case "origins":
			h.Origins = d.RemainingArgs()
			if len(h.Origins) == 0 {
				return d.ArgErr()
			}
		default:
			return d.Errf("unrecognized subdirective: %s", name)
		}
		return nil
	})
}

// Interface guard
var _ caddyfile.Unmarshaler = (*WSStatus)(nil)

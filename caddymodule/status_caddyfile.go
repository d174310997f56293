package caddymodule

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("scrape_status", parseHandler[ScrapeStatus])
	httpcaddyfile.RegisterDirectiveOrder("scrape_status", httpcaddyfile.Before, "respond")
}

// UnmarshalCaddyfile parses the directive. Syntax:
//
//	scrape_status {
//		queue_cache <duration>
//		queue_wait  <duration>
//		pools       <pool...>
//	}
//
// The block is optional; each subdirective may appear once. See ScrapeStatus
// for what each does and its default.
func (h *ScrapeStatus) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return eachSubdirective(d, func(name string) error {
		switch name {
		case "queue_cache", "queue_wait":
			dur, err := parseDurationArg(d, name, false)
			if err != nil {
				return err
			}
			if name == "queue_cache" {
				h.QueueCache = dur
			} else {
				h.QueueWait = dur
			}
		case "pools":
			h.Pools = d.RemainingArgs()
			if len(h.Pools) == 0 {
				return d.ArgErr()
			}
			if err := validatePools(h.Pools); err != nil {
				return d.Err(err.Error())
			}
		default:
			return d.Errf("unrecognized subdirective: %s", name)
		}
		return nil
	})
}

// parseDurationArg reads the one duration argument of subdirective name;
// zero is allowed only when allowZero (negative never is).
func parseDurationArg(d *caddyfile.Dispenser, name string, allowZero bool) (caddy.Duration, error) {
	var val string
	if !d.AllArgs(&val) {
		return 0, d.ArgErr()
	}
	dur, err := caddy.ParseDuration(val)
	if err != nil {
		return 0, d.Errf("%s: bad duration %q: %v", name, val, err)
	}
	if dur < 0 || dur == 0 && !allowZero {
		return 0, d.Errf("%s: must be positive, got %q", name, val)
	}
	return caddy.Duration(dur), nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*ScrapeStatus)(nil)

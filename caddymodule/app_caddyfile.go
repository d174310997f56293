package caddymodule

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func init() {
	httpcaddyfile.RegisterGlobalOption(AppID, parseAppOption)
}

// parseAppOption parses the `scrapegate` global option into the scrapegate
// app. Syntax:
//
//	scrapegate {
//		amqp_url            <url>
//		reply_mode          queue|direct
//		heartbeat_interval  <duration>
//		instance_id         <id>
//		connection_name     <name>
//		publish_channels    <n>
//		reply_queue_expires <duration>
//		accepted_events
//	}
//
// Every subdirective is optional and may appear once; see App for what each
// one does and its default. Secrets belong in placeholders
// ({env.AMQP_URL}), which the app resolves when it is provisioned.
func parseAppOption(d *caddyfile.Dispenser, existing any) (any, error) {
	if existing != nil {
		return nil, d.Err("the scrapegate global option may appear only once")
	}
	a := new(App)
	if err := a.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{
		Name:  AppID,
		Value: caddyconfig.JSON(a, nil),
	}, nil
}

// UnmarshalCaddyfile sets up the app from the tokens of the `scrapegate`
// global option (see parseAppOption for the syntax).
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return eachSubdirective(d, func(name string) error {
		switch name {
		case "accepted_events":
			if d.NextArg() {
				return d.ArgErr()
			}
			a.AcceptedEvents = true
			return nil
		case "amqp_url", "reply_mode", "heartbeat_interval", "instance_id",
			"connection_name", "publish_channels", "reply_queue_expires":
		default:
			return d.Errf("unrecognized subdirective: %s", name)
		}

		var val string
		if !d.AllArgs(&val) {
			return d.ArgErr()
		}
		switch name {
		case "amqp_url":
			a.AMQPURL = val
		case "reply_mode":
			if val != "queue" && val != "direct" {
				return d.Errf("reply_mode: %q is neither queue nor direct", val)
			}
			a.ReplyMode = val
		case "heartbeat_interval", "reply_queue_expires":
			dur, err := caddy.ParseDuration(val)
			if err != nil {
				return d.Errf("%s: bad duration %q: %v", name, val, err)
			}
			if dur <= 0 {
				return d.Errf("%s: must be positive, got %q", name, val)
			}
			if name == "heartbeat_interval" {
				a.HeartbeatInterval = caddy.Duration(dur)
			} else {
				a.ReplyQueueExpires = caddy.Duration(dur)
			}
		case "instance_id":
			a.InstanceID = val
		case "connection_name":
			a.ConnectionName = val
		case "publish_channels":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 {
				return d.Errf("publish_channels: %q is not a positive integer", val)
			}
			a.PublishChannels = n
		}
		return nil
	})
}

// Interface guard
var _ caddyfile.Unmarshaler = (*App)(nil)

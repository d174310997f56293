package caddymodule

import (
	"fmt"
	"net/url"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"

	"github.com/scrapegate/scrapegate/rpc"
)

func init() {
	caddy.RegisterModule(new(App))
}

// AppID is the ID of the scrapegate app; handlers load it with
// ctx.App(AppID).
const AppID = "scrapegate"

// Defaults of the App's fields.
const (
	// DefaultAMQPURL is the broker the app dials when amqp_url and the
	// AMQP_URL environment variable are both unset.
	DefaultAMQPURL = "amqp://guest:guest@127.0.0.1:5672/"
	// DefaultHeartbeatInterval is the workers' heartbeat interval assumed
	// when heartbeat_interval is unset.
	DefaultHeartbeatInterval = 5 * time.Second
	// DefaultPublishChannels is the size of the publishing channel pool.
	DefaultPublishChannels = 4
)

// App is the `scrapegate` app: the one link to the RabbitMQ broker that every
// scrapegate handler shares (an rpc.Client, the fan-out of task events and
// the call statistics). The link lives in a package-level caddy.UsagePool
// keyed by the broker URL (redacted) and the options below, so a config
// reload that keeps them keeps the same broker connection, its reply queue
// and the calls in flight; it is dialled in Start, never in Provision (so
// `caddy validate` does no network I/O).
//
// Handlers get it in their Provision with ctx.App("scrapegate"); when the
// config has no `scrapegate` app, that call provisions one with the defaults.
type App struct {
	// The AMQP URL of the broker (amqp:// or amqps://). Placeholders such as
	// {env.AMQP_URL} are resolved when the app is provisioned, so the secret
	// in it never appears in the adapted config. Default: the AMQP_URL
	// environment variable, or amqp://guest:guest@127.0.0.1:5672/.
	AMQPURL string `json:"amqp_url,omitempty"`

	// How replies come back: "queue" (the default) uses a durable named
	// reply queue scrape.replies.<instance_id> that outlives a reconnect, so
	// calls the broker already confirmed survive a dropped link; "direct"
	// uses RabbitMQ's direct reply-to (amq.rabbitmq.reply-to), slightly
	// faster, but calls in flight fail when the link drops.
	ReplyMode string `json:"reply_mode,omitempty"`

	// The interval at which workers send heartbeats. A worker counts as live
	// while its last heartbeat is younger than three intervals; the gateway
	// answers NO_WORKERS for a script no live worker serves. It must match
	// the workers' setting. Default: 5s.
	HeartbeatInterval caddy.Duration `json:"heartbeat_interval,omitempty"`

	// Names this gateway instance: its reply queue is
	// scrape.replies.<instance_id> and its broker connection
	// scrapegate-gateway-<instance_id>. It must be unique among the gateways
	// of one broker. Placeholders are resolved. Default: random, chosen once
	// per process and kept across reloads.
	InstanceID string `json:"instance_id,omitempty"`

	// The name of the broker connection, shown by the broker's management
	// tools (`rabbitmqctl list_connections name`). Default:
	// scrapegate-gateway-<instance_id>.
	ConnectionName string `json:"connection_name,omitempty"`

	// The number of AMQP channels used to publish tasks (each in confirm
	// mode). Default: 4.
	PublishChannels int `json:"publish_channels,omitempty"`

	// How long the broker keeps the named reply queue after this gateway is
	// gone (its x-expires). Only with reply_mode queue. Default: 60s.
	ReplyQueueExpires caddy.Duration `json:"reply_queue_expires,omitempty"`

	// EXPERIMENTAL: publish a task.accepted event on scrape.events when the
	// broker confirms a task, for WebSocket subscribers. It costs one more
	// publish per call. Default: false.
	AcceptedEvents bool `json:"accepted_events,omitempty"`

	link   *link
	key    string
	ctx    caddy.Context
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (*App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  AppID,
		New: func() caddy.Module { return new(App) },
	}
}

// Provision fills in the defaults, resolves placeholders and loads (or
// creates, without dialling) the pooled broker link.
func (a *App) Provision(ctx caddy.Context) error {
	a.ctx = ctx
	a.logger = ctx.Logger()

	cfg, err := a.clientConfig()
	if err != nil {
		return err
	}
	a.key = linkKey(cfg)
	l, err := loadLink(a.key, cfg)
	if err != nil {
		return fmt.Errorf("loading broker link %s: %v", redactURL(cfg.URL), err)
	}
	a.link = l
	return nil
}

// Start dials the broker (once per pooled link: a reload that keeps the link
// does nothing here) and returns at once; the link connects and reconnects
// in the background.
func (a *App) Start() error {
	if a.link.start() {
		a.logger.Info("connecting to broker",
			zap.String("amqp_url", a.link.redactedURL),
			zap.String("connection_name", a.link.client.ConnectionName()),
			zap.String("reply_mode", a.replyMode()))
	}
	return nil
}

// Stop does nothing: the link may still be used by the next config, and is
// closed in Cleanup when its last user is gone.
func (a *App) Stop() error { return nil }

// Cleanup releases this config's reference to the pooled link; the last
// reference closes it (pending calls then fail with BROKER_UNAVAILABLE).
func (a *App) Cleanup() error {
	if a.link == nil {
		return nil
	}
	a.link = nil
	if _, err := links.Delete(a.key); err != nil {
		return fmt.Errorf("closing broker link: %v", err)
	}
	return nil
}

// Client returns the rpc client of the broker link.
func (a *App) Client() *rpc.Client { return a.link.client }

// Subscribe registers fn to receive every task event the link consumes from
// scrape.events (all tasks of all gateways and workers). fn is called on the
// link's event goroutine and must not block: hand the event to a buffered
// channel and drop it (or evict the subscriber) when the channel is full.
// The returned function unsubscribes; call it in Cleanup. It may be called
// more than once.
func (a *App) Subscribe(fn func(rpc.Event)) (unsubscribe func()) {
	return a.link.bus.subscribe(fn)
}

// Stats returns the call statistics of the broker link; they are kept across
// config reloads.
func (a *App) Stats() *callStats { return a.link.stats }

// StartedAt returns when the broker link was created: the gateway's uptime
// starts there and survives config reloads.
func (a *App) StartedAt() time.Time { return a.link.createdAt }

// clientConfig builds the rpc client config from the app's fields: defaults
// filled in, placeholders resolved, validated.
func (a *App) clientConfig() (rpc.ClientConfig, error) {
	repl := caddy.NewReplacer()
	rawURL := repl.ReplaceAll(a.AMQPURL, "")
	if rawURL == "" {
		rawURL = os.Getenv("AMQP_URL")
	}
	if rawURL == "" {
		rawURL = DefaultAMQPURL
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "amqp" && u.Scheme != "amqps") || u.Host == "" {
		// never quote the value: it may hold a password
		return rpc.ClientConfig{}, fmt.Errorf("amqp_url: must be an amqp:// or amqps:// URL with a host")
	}

	mode := a.replyMode()
	switch mode {
	case string(rpc.ReplyQueue), string(rpc.ReplyDirect):
	default:
		return rpc.ClientConfig{}, fmt.Errorf("reply_mode: %q is neither queue nor direct", a.ReplyMode)
	}
	if a.HeartbeatInterval < 0 {
		return rpc.ClientConfig{}, fmt.Errorf("heartbeat_interval: must not be negative")
	}
	heartbeat := time.Duration(a.HeartbeatInterval)
	if heartbeat == 0 {
		heartbeat = DefaultHeartbeatInterval
	}
	if a.PublishChannels < 0 {
		return rpc.ClientConfig{}, fmt.Errorf("publish_channels: must not be negative")
	}
	channels := a.PublishChannels
	if channels == 0 {
		channels = DefaultPublishChannels
	}
	if a.ReplyQueueExpires < 0 {
		return rpc.ClientConfig{}, fmt.Errorf("reply_queue_expires: must not be negative")
	}

	cfg := rpc.ClientConfig{
		URL:               rawURL,
		ConnectionName:    repl.ReplaceAll(a.ConnectionName, ""),
		InstanceID:        repl.ReplaceAll(a.InstanceID, ""),
		ReplyMode:         rpc.ReplyMode(mode),
		ReplyQueueExpires: time.Duration(a.ReplyQueueExpires),
		PublishChannels:   channels,
		HeartbeatInterval: heartbeat,
		AcceptedEvents:    a.AcceptedEvents,
		Logger:            a.logger,
	}
	if err := cfg.Validate(); err != nil {
		return rpc.ClientConfig{}, fmt.Errorf("validating broker link config: %v", err)
	}
	return cfg, nil
}

// replyMode returns the configured reply mode or its default.
func (a *App) replyMode() string {
	if a.ReplyMode == "" {
		return string(rpc.ReplyQueue)
	}
	return a.ReplyMode
}

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)

package rpc

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"
)

// ReplyMode selects how a Client receives its replies.
type ReplyMode string

// Reply modes.
const (
	// ReplyQueue (the default) receives replies on the durable, non-exclusive
	// named queue scrape.replies.<instance> with x-expires: replies to tasks
	// the broker confirmed survive a reconnect.
	ReplyQueue ReplyMode = "queue"
	// ReplyDirect receives replies through RabbitMQ's direct reply-to
	// (amq.rabbitmq.reply-to): the lowest latency, but a reply cannot survive
	// a reconnect, so every call in flight fails when the link drops.
	ReplyDirect ReplyMode = "direct"
)

// Queue types of a worker pool's task queue.
const (
	QueueClassic = "classic"
	QueueQuorum  = "quorum"
)

// Defaults of ClientConfig and ServerConfig.
const (
	DefaultReplyQueueExpires = 60 * time.Second
	DefaultPublishChannels   = 4
	DefaultHeartbeatInterval = 5 * time.Second
	DefaultReconnectMin      = 100 * time.Millisecond
	DefaultReconnectMax      = 5 * time.Second
	DefaultConcurrency       = 16
	DefaultDeliveryLimit     = 5
	DefaultGracePeriod       = 30 * time.Second
)

// ClientConfig configures a Client (the gateway side of the link). The zero
// value of every field but URL is a usable default.
type ClientConfig struct {
	// URL is the broker's AMQP URL (amqp:// or amqps://). Required.
	URL string
	// ConnectionName is the connection name the broker shows.
	// Default: "scrapegate-gateway-<InstanceID>".
	ConnectionName string
	// InstanceID names this gateway instance and its reply queue
	// scrape.replies.<InstanceID>. Default: random.
	InstanceID string
	// ReplyMode is ReplyQueue (default) or ReplyDirect.
	ReplyMode ReplyMode
	// ReplyQueueExpires is the x-expires of the reply queue: the broker
	// deletes it this long after its gateway is gone. Default: 60s.
	ReplyQueueExpires time.Duration
	// PublishChannels is the number of channels calls are spread over, so
	// they do not serialise on one. Default: 4.
	PublishChannels int
	// HeartbeatInterval is the workers' heartbeat interval: a worker is live
	// while its last heartbeat is younger than three intervals. Default: 5s.
	HeartbeatInterval time.Duration
	// ReconnectMin is the first delay before a reconnect. Default: 100ms.
	ReconnectMin time.Duration
	// ReconnectMax caps the reconnect delay (exponential, jittered). Default: 5s.
	ReconnectMax time.Duration
	// AcceptedEvents publishes task.accepted on scrape.events once the broker
	// confirmed a task.
	AcceptedEvents bool
	// OnEvent, if set, receives every task.* event on scrape.events (from all
	// workers and gateways). It is called on one goroutine and must not block.
	OnEvent func(Event)
	// Logger receives the client's logs. Default: zap.NewNop().
	Logger *zap.Logger
}

// Validate reports the first invalid field of c, naming it.
func (c ClientConfig) Validate() error {
	if err := validateURL(c.URL); err != nil {
		return err
	}
	switch c.ReplyMode {
	case "", ReplyQueue, ReplyDirect:
	default:
		return fmt.Errorf("reply_mode: must be %q or %q, got %q", ReplyQueue, ReplyDirect, c.ReplyMode)
	}
	if err := validateName("instance_id", c.InstanceID); err != nil {
		return err
	}
	if c.ReplyQueueExpires < 0 || (c.ReplyQueueExpires > 0 && c.ReplyQueueExpires < time.Second) {
		return errors.New("reply_queue_expires: must be at least 1s")
	}
	if c.PublishChannels < 0 || c.PublishChannels > 256 {
		return fmt.Errorf("publish_channels: must be between 1 and 256, got %d", c.PublishChannels)
	}
	if c.HeartbeatInterval < 0 {
		return errors.New("heartbeat_interval: must not be negative")
	}
	return validateBackoff(c.ReconnectMin, c.ReconnectMax)
}

func (c *ClientConfig) setDefaults() {
	if c.InstanceID == "" {
		c.InstanceID = randomID(8)
	}
	if c.ConnectionName == "" {
		c.ConnectionName = "scrapegate-gateway-" + c.InstanceID
	}
	if c.ReplyMode == "" {
		c.ReplyMode = ReplyQueue
	}
	if c.ReplyQueueExpires == 0 {
		c.ReplyQueueExpires = DefaultReplyQueueExpires
	}
	if c.PublishChannels == 0 {
		c.PublishChannels = DefaultPublishChannels
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.ReconnectMin == 0 {
		c.ReconnectMin = DefaultReconnectMin
	}
	if c.ReconnectMax == 0 {
		c.ReconnectMax = max(DefaultReconnectMax, c.ReconnectMin)
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
}

// ServerConfig configures a Server (the worker side of the link). The zero
// value of every field but URL is a usable default.
type ServerConfig struct {
	// URL is the broker's AMQP URL (amqp:// or amqps://). Required.
	URL string
	// ConnectionName is the connection name the broker shows.
	// Default: "scrapegate-worker-<WorkerID>".
	ConnectionName string
	// WorkerID identifies the worker in replies, events and heartbeats.
	// Default: <hostname>-<pid>-<random>.
	WorkerID string
	// Pool is the worker pool: the server consumes scrape.tasks.<Pool>.
	// Default: "default".
	Pool string
	// Concurrency is the prefetch and the number of tasks run in parallel.
	// Default: 16.
	Concurrency int
	// QueueType is the task queue's type, "classic" (default) or "quorum".
	// Every worker of a pool must use the same.
	QueueType string
	// DeliveryLimit (quorum only) is how many times a task is returned to
	// the queue (its worker died) before it is dead-lettered. Default: 5.
	DeliveryLimit int
	// HeartbeatInterval is how often worker.heartbeat is published. Default: 5s.
	HeartbeatInterval time.Duration
	// GracePeriod bounds a graceful stop: in-flight tasks get this long to
	// finish, the rest are requeued. Default: 30s.
	GracePeriod time.Duration
	// ReconnectMin is the first delay before a reconnect. Default: 100ms.
	ReconnectMin time.Duration
	// ReconnectMax caps the reconnect delay (exponential, jittered). Default: 5s.
	ReconnectMax time.Duration
	// Logger receives the server's logs. Default: zap.NewNop().
	Logger *zap.Logger
}

// Validate reports the first invalid field of c, naming it.
func (c ServerConfig) Validate() error {
	if err := validateURL(c.URL); err != nil {
		return err
	}
	if err := validateName("worker_id", c.WorkerID); err != nil {
		return err
	}
	if err := validateName("pool", c.Pool); err != nil {
		return err
	}
	if c.Concurrency < 0 || c.Concurrency > 65535 {
		return fmt.Errorf("concurrency: must be between 1 and 65535, got %d", c.Concurrency)
	}
	switch c.QueueType {
	case "", QueueClassic, QueueQuorum:
	default:
		return fmt.Errorf("queue_type: must be %q or %q, got %q", QueueClassic, QueueQuorum, c.QueueType)
	}
	if c.DeliveryLimit < 0 {
		return fmt.Errorf("delivery_limit: must not be negative, got %d", c.DeliveryLimit)
	}
	if c.HeartbeatInterval < 0 {
		return errors.New("heartbeat_interval: must not be negative")
	}
	if c.GracePeriod < 0 {
		return errors.New("grace_period: must not be negative")
	}
	return validateBackoff(c.ReconnectMin, c.ReconnectMax)
}

func (c *ServerConfig) setDefaults() {
	if c.WorkerID == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = "worker"
		}
		c.WorkerID = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), randomID(3))
	}
	if c.ConnectionName == "" {
		c.ConnectionName = "scrapegate-worker-" + c.WorkerID
	}
	if c.Pool == "" {
		c.Pool = DefaultPool
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.QueueType == "" {
		c.QueueType = QueueClassic
	}
	if c.DeliveryLimit == 0 {
		c.DeliveryLimit = DefaultDeliveryLimit
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.GracePeriod == 0 {
		c.GracePeriod = DefaultGracePeriod
	}
	if c.ReconnectMin == 0 {
		c.ReconnectMin = DefaultReconnectMin
	}
	if c.ReconnectMax == 0 {
		c.ReconnectMax = max(DefaultReconnectMax, c.ReconnectMin)
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
}

func validateURL(raw string) error {
	if raw == "" {
		return errors.New("url: required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("url: not a valid URL") // never echo the URL: it may hold a password
	}
	if u.Scheme != "amqp" && u.Scheme != "amqps" {
		return fmt.Errorf("url: scheme must be amqp or amqps, got %q", u.Scheme)
	}
	return nil
}

// validateName checks an optional name used inside queue names.
func validateName(field, v string) error {
	if len(v) > 200 {
		return fmt.Errorf("%s: longer than 200 bytes", field)
	}
	if strings.ContainsAny(v, " \t\r\n") {
		return fmt.Errorf("%s: must not contain whitespace", field)
	}
	return nil
}

func validateBackoff(lo, hi time.Duration) error {
	if lo < 0 {
		return errors.New("reconnect_min: must not be negative")
	}
	if hi < 0 {
		return errors.New("reconnect_max: must not be negative")
	}
	if lo > 0 && hi > 0 && hi < lo {
		return fmt.Errorf("reconnect_max: %s is below reconnect_min %s", hi, lo)
	}
	return nil
}

// randomID returns n random bytes in hex.
func randomID(n int) string {
	b := make([]byte, n)
	fillRandom(b)
	return hex.EncodeToString(b)
}

// fillRandom fills b from crypto/rand (which never fails on supported
// platforms).
func fillRandom(b []byte) { _, _ = rand.Read(b) }

package caddymodule

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"

	"github.com/scrapegate/scrapegate/rpc"
)

// links holds the broker links, one per identity (see linkKey), across
// config reloads: a reload provisions the new config (LoadOrNew finds the
// live link) before it cleans up the old one (Delete drops a reference), so
// the connection, its reply queue and the calls in flight survive it.
var links = caddy.NewUsagePool()

// link is the pooled state of one broker identity: the rpc client, the
// fan-out of its task events and the call statistics.
type link struct {
	client      *rpc.Client
	bus         *eventBus
	stats       *callStats
	createdAt   time.Time
	redactedURL string
	started     atomic.Bool
}

// loadLink returns the pooled link of key, creating it (without any network
// I/O) when this is its first user.
func loadLink(key string, cfg rpc.ClientConfig) (*link, error) {
	val, _, err := links.LoadOrNew(key, func() (caddy.Destructor, error) {
		return newLink(cfg)
	})
	if err != nil {
		return nil, err
	}
	return val.(*link), nil
}

// newLink builds a link; the client does not dial until start.
func newLink(cfg rpc.ClientConfig) (*link, error) {
	l := &link{
		bus:         newEventBus(cfg.Logger),
		stats:       new(callStats),
		createdAt:   time.Now(),
		redactedURL: redactURL(cfg.URL),
	}
	cfg.OnEvent = l.bus.publish
	c, err := rpc.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating rpc client: %v", err)
	}
	l.client = c
	return l, nil
}

// start starts the client's connect loop the first time it is called; it
// reports whether it did.
func (l *link) start() bool {
	if !l.started.CompareAndSwap(false, true) {
		return false
	}
	l.client.Start()
	return true
}

// Destruct closes the client; the pool calls it when the last config that
// used the link is cleaned up.
func (l *link) Destruct() error {
	return l.client.Close()
}

// linkKey is the identity of a broker link: the redacted URL, a digest of
// the full URL (so a changed password makes a new link, without keeping the
// password in the key) and every option that shapes the connection.
func linkKey(cfg rpc.ClientConfig) string {
	sum := sha256.Sum256([]byte(cfg.URL))
	return fmt.Sprintf("%s#%s|name=%s|instance=%s|reply=%s|expires=%s|channels=%d|heartbeat=%s|accepted=%t",
		redactURL(cfg.URL), hex.EncodeToString(sum[:8]), cfg.ConnectionName, cfg.InstanceID,
		cfg.ReplyMode, cfg.ReplyQueueExpires, cfg.PublishChannels, cfg.HeartbeatInterval, cfg.AcceptedEvents)
}

// redactURL returns the URL with its password replaced by "xxxxx", or a
// placeholder when it does not parse; it is safe to log.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable url)"
	}
	return u.Redacted()
}

// eventBus fans the task events of one link out to its subscribers. The
// subscriber list is copied on write, so publish takes no lock.
type eventBus struct {
	mu     sync.Mutex // serialises writers of subs
	subs   atomic.Pointer[[]*subscriber]
	logger *zap.Logger
}

// subscriber is one registered callback.
type subscriber struct {
	fn func(rpc.Event)
}

// newEventBus returns an empty bus; logger reports subscriber panics.
func newEventBus(logger *zap.Logger) *eventBus {
	if logger == nil {
		logger = zap.NewNop()
	}
	b := &eventBus{logger: logger}
	b.subs.Store(new([]*subscriber))
	return b
}

// publish hands ev to every subscriber, on the caller's goroutine. A
// subscriber that panics is logged and skipped; the others still get ev.
func (b *eventBus) publish(ev rpc.Event) {
	for _, s := range *b.subs.Load() {
		b.deliver(s, ev)
	}
}

// deliver calls one subscriber, containing its panic.
func (b *eventBus) deliver(s *subscriber, ev rpc.Event) {
	defer func() {
		if r := recover(); r != nil {
			b.logger.Error("event subscriber panicked",
				zap.String("event_type", ev.Type), zap.Any("panic", r))
		}
	}()
	s.fn(ev)
}

// subscribe adds fn and returns the function that removes it (idempotent).
func (b *eventBus) subscribe(fn func(rpc.Event)) func() {
	s := &subscriber{fn: fn}
	b.mu.Lock()
	old := *b.subs.Load()
	next := make([]*subscriber, len(old), len(old)+1)
	copy(next, old)
	next = append(next, s)
	b.subs.Store(&next)
	b.mu.Unlock()

	var once sync.Once
	return func() {
		once.Do(func() { b.unsubscribe(s) })
	}
}

// unsubscribe removes s.
func (b *eventBus) unsubscribe(s *subscriber) {
	b.mu.Lock()
	defer b.mu.Unlock()
	old := *b.subs.Load()
	next := make([]*subscriber, 0, len(old))
	for _, o := range old {
		if o != s {
			next = append(next, o)
		}
	}
	b.subs.Store(&next)
}

// Interface guards
var _ caddy.Destructor = (*link)(nil)

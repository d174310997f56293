package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// replyAckBatch is how many replies the reply-queue consumer receives before
// it acknowledges them with one multiple ack; replyAckEvery flushes the rest.
const (
	replyAckBatch = 64
	replyAckEvery = 50 * time.Millisecond
)

// headerPool recycles the headers table of tasks.
var headerPool = sync.Pool{New: func() any { return amqp.Table{} }}

// errNoDeadline is returned by Call for a context without a deadline and a
// task without a timeout.
var errNoDeadline = errors.New("call context has no deadline and the task no timeout")

// Client is the gateway side of the RPC link: it publishes tasks and routes
// each reply to the Call waiting for it, by correlation id. One Client is
// safe for concurrent use by many goroutines and keeps one connection, which
// it re-establishes on its own after Start.
type Client struct {
	cfg    ClientConfig
	logger *zap.Logger
	link   *link
	pend   *pending
	reg    *registry
	// replyTo is the reply_to of every task.
	replyTo string

	cur  atomic.Pointer[clientSession]
	next atomic.Uint32

	startOnce sync.Once
	closeOnce sync.Once
	closed    atomic.Bool
	done      chan struct{}
	stop      context.CancelFunc
	wg        sync.WaitGroup
	// aux counts QueueDepth goroutines; auxMu orders their Add before
	// Close's Wait.
	auxMu sync.Mutex
	aux   sync.WaitGroup

	calls, replies, timeouts, returns, late, nacks, cancels atomic.Uint64
	inFlight                                                atomic.Int64
	// lost are the cancels to publish again (see lostCancels).
	lost lostCancels
	// confirmed counts tasks the broker confirmed (for tests).
	confirmed atomic.Uint64
}

// clientSession is what the client built on one connection.
type clientSession struct {
	s    *session
	pubs []*amqp.Channel
}

// ClientStats are the client's counters since it was created.
type ClientStats struct {
	// Calls counts calls made; Replies the replies matched to a call;
	// Timeouts the calls that hit their deadline; Returns the tasks the
	// broker returned (unknown script); LateReplies the replies for no
	// waiting call (late or duplicate), dropped; Reconnects the links lost;
	// Nacks the tasks the broker refused; Cancels the task.cancel messages
	// published.
	Calls, Replies, Timeouts, Returns, LateReplies, Reconnects, Nacks, Cancels uint64
	// InFlight is the number of calls waiting now.
	InFlight int64
}

// WorkerInfo is a worker heard from by heartbeat.
type WorkerInfo struct {
	// Heartbeat is the last heartbeat received.
	Heartbeat
	// LastSeen is when it was received.
	LastSeen time.Time
	// Live is true while the last heartbeat is younger than three
	// heartbeat intervals.
	Live bool
}

// NewClient validates cfg and returns a Client. It does no network I/O:
// Start connects.
func NewClient(cfg ClientConfig) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid client config: %w", err)
	}
	cfg.setDefaults()
	c := &Client{
		cfg:    cfg,
		logger: cfg.Logger,
		pend:   newPending(),
		reg:    newRegistry(cfg.HeartbeatInterval),
		done:   make(chan struct{}),
	}
	if cfg.ReplyMode == ReplyDirect {
		c.replyTo = DirectReplyTo
	} else {
		c.replyTo = ReplyQueueName(cfg.InstanceID)
	}
	c.link = &link{
		url: cfg.URL, name: cfg.ConnectionName,
		min: cfg.ReconnectMin, max: cfg.ReconnectMax,
		h: (*clientHandler)(c), logger: c.logger,
	}
	return c, nil
}

// Start starts connecting (and reconnecting) in the background and returns
// at once. Calls fail with ErrBrokerUnavailable until the link is up.
func (c *Client) Start() {
	c.startOnce.Do(func() {
		if c.closed.Load() {
			return
		}
		ctx, cancel := context.WithCancel(context.Background())
		c.stop = cancel
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.link.run(ctx)
		}()
	})
}

// Close stops the client: pending calls fail with ErrClosed, the connection
// is closed, and no goroutine of the client outlives Close.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		close(c.done)
		c.startOnce.Do(func() {}) // a later Start does nothing
		if c.stop != nil {
			c.stop()
		}
		c.wg.Wait()
		c.auxMu.Lock() // QueueDepth sees closed under auxMu: no Add after this
		c.aux.Wait()
		c.auxMu.Unlock()
		c.pend.failAll(result{kind: outClosed})
	})
	return nil
}

// Connected reports whether the link is up and the topology declared.
func (c *Client) Connected() bool { return c.cur.Load() != nil }

// ConnectionName returns the connection name the broker shows.
func (c *Client) ConnectionName() string { return c.cfg.ConnectionName }

// Stats returns the client's counters.
func (c *Client) Stats() ClientStats {
	return ClientStats{
		Calls:       c.calls.Load(),
		Replies:     c.replies.Load(),
		Timeouts:    c.timeouts.Load(),
		Returns:     c.returns.Load(),
		LateReplies: c.late.Load(),
		Reconnects:  c.link.reconnects.Load(),
		Nacks:       c.nacks.Load(),
		Cancels:     c.cancels.Load(),
		InFlight:    c.inFlight.Load(),
	}
}

// Workers returns the workers heard from by heartbeat, sorted by id.
func (c *Client) Workers() []WorkerInfo { return c.reg.list(time.Now()) }

// Scripts returns the union of the scripts live workers advertise, sorted by
// name, each with the union of its versions.
func (c *Client) Scripts() []ScriptInfo { return c.reg.scripts(time.Now()) }

// QueueDepth returns the number of ready messages and of consumers of the
// task queue of pool, by a passive declare.
func (c *Client) QueueDepth(ctx context.Context, pool string) (messages, consumers int, err error) {
	cs := c.cur.Load()
	if cs == nil {
		return 0, 0, fmt.Errorf("queue depth of pool %q: %w", pool, ErrBrokerUnavailable)
	}
	type answer struct {
		q   amqp.Queue
		err error
	}
	ans := make(chan answer, 1)
	c.auxMu.Lock()
	if c.closed.Load() {
		c.auxMu.Unlock()
		return 0, 0, ErrClosed
	}
	c.aux.Add(1)
	c.auxMu.Unlock()
	go func() {
		defer c.aux.Done()
		ch, err := cs.s.conn.Channel()
		if err != nil {
			ans <- answer{err: err}
			return
		}
		q, err := ch.QueueDeclarePassive(TaskQueueName(pool), true, false, false, false, nil)
		_ = ch.Close()
		ans <- answer{q, err}
	}()
	select {
	case a := <-ans:
		if a.err != nil {
			return 0, 0, fmt.Errorf("queue depth of pool %q: %w", pool, a.err)
		}
		return a.q.Messages, a.q.Consumers, nil
	case <-ctx.Done():
		return 0, 0, fmt.Errorf("queue depth of pool %q: %w", pool, context.Cause(ctx))
	}
}

// Call publishes t and waits for its reply. ctx must carry the deadline (the
// caller's timeout): the task's expiration and x-deadline-ms come from it
// (without one, t.Timeout seconds are used). t.RequestID is the correlation
// and message id (a random one if empty).
//
// Errors (test with errors.Is): ErrUnknownScript, ErrNoWorkers, ErrTimeout,
// ErrBrokerUnavailable, ErrNacked, ErrCanceled (a task.cancel was published
// on scrape.control), ErrClosed. A failed reply returns the Reply and a
// *TaskError (errors.As) with its code.
func (c *Client) Call(ctx context.Context, t Task) (Reply, error) {
	if c.closed.Load() {
		return Reply{}, ErrClosed
	}
	now := time.Now()
	deadline, ok := ctx.Deadline()
	if !ok {
		if t.Timeout <= 0 {
			return Reply{}, errNoDeadline
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, now.Add(time.Duration(t.Timeout)*time.Second))
		defer cancel()
		deadline, _ = ctx.Deadline()
	}
	c.calls.Add(1)
	left := deadline.Sub(now)
	if left <= 0 {
		c.timeouts.Add(1)
		return Reply{}, fmt.Errorf("%w: deadline passed before publishing", ErrTimeout)
	}
	if c.reg.noWorkers(t.ScriptName, now) {
		return Reply{}, fmt.Errorf("%w: %q", ErrNoWorkers, t.ScriptName)
	}
	cs := c.cur.Load()
	if cs == nil {
		return Reply{}, fmt.Errorf("publishing task: %w", ErrBrokerUnavailable)
	}
	if t.RequestID == "" {
		t.RequestID = newRequestID()
	}
	if t.Timeout <= 0 {
		t.Timeout = int((left + time.Second - 1) / time.Second)
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = now.UTC()
	}
	if t.Parameters == nil {
		t.Parameters = json.RawMessage("{}")
	}
	bp := taskBufPool.Get().(*[]byte)
	body, err := appendTask((*bp)[:0], &t)
	if err != nil {
		taskBufPool.Put(bp)
		return Reply{}, fmt.Errorf("encoding task: %w", err)
	}
	id := t.RequestID
	cl := callPool.Get().(*call)
	if !c.pend.put(id, cl) {
		callPool.Put(cl)
		return Reply{}, fmt.Errorf("request id %q is already in flight", id)
	}
	c.inFlight.Add(1)
	defer c.inFlight.Add(-1)

	ch := cs.pubs[int(c.next.Add(1))%len(cs.pubs)]
	headers := headerPool.Get().(amqp.Table)
	headers[HeaderClientID] = t.ClientID
	headers[HeaderDeadlineMS] = ceilMilli(deadline)
	dc, err := ch.PublishWithDeferredConfirm(TaskExchange, t.ScriptName, true, false, amqp.Publishing{
		ContentType:   "application/json",
		CorrelationId: id,
		MessageId:     id,
		ReplyTo:       c.replyTo,
		Expiration:    strconv.FormatInt(max(left.Milliseconds(), 1), 10),
		Timestamp:     now,
		DeliveryMode:  amqp.Persistent,
		Headers:       headers,
		Body:          body,
	})
	clear(headers) // the frame is written: amqp091 keeps no reference
	headerPool.Put(headers)
	if cap(body) <= 64<<10 {
		*bp = body
		taskBufPool.Put(bp)
	}
	if err != nil {
		if r, ok := c.release(id, cl); ok {
			return c.finish(&t, r)
		}
		if c.closed.Load() {
			return Reply{}, ErrClosed
		}
		return Reply{}, fmt.Errorf("publishing task: %w: %w", ErrBrokerUnavailable, err)
	}

	// Wait for the broker's confirm; a return (no route) comes before it.
	for confirmed := false; !confirmed; {
		select {
		case <-dc.Done():
			if dc.Acked() {
				confirmed = true
				c.confirmed.Add(1)
				if c.cfg.AcceptedEvents {
					c.publishAccepted(ch, &t)
				}
				continue
			}
			if r, ok := c.release(id, cl); ok {
				return c.finish(&t, r)
			}
			if c.closed.Load() {
				return Reply{}, ErrClosed
			}
			if ch.IsClosed() {
				return Reply{}, fmt.Errorf("waiting for confirm: %w", ErrBrokerUnavailable)
			}
			c.nacks.Add(1)
			return Reply{}, ErrNacked
		case r := <-cl.ch:
			callPool.Put(cl)
			if r.kind == outReply {
				// The reply overtook the confirm: the broker did accept it.
				c.confirmed.Add(1)
				if c.cfg.AcceptedEvents {
					c.publishAccepted(ch, &t)
				}
			}
			return c.finish(&t, r)
		case <-ctx.Done():
			return c.abandon(ctx, ch, &t, cl)
		case <-c.done:
			if r, ok := c.release(id, cl); ok {
				return c.finish(&t, r)
			}
			return Reply{}, ErrClosed
		}
	}
	select {
	case r := <-cl.ch:
		callPool.Put(cl)
		return c.finish(&t, r)
	case <-ctx.Done():
		return c.abandon(ctx, ch, &t, cl)
	case <-c.done:
		if r, ok := c.release(id, cl); ok {
			return c.finish(&t, r)
		}
		return Reply{}, ErrClosed
	}
}

// release removes a call from the pending map and recycles it. If a result
// had already been handed to it, release returns that result instead.
func (c *Client) release(id string, cl *call) (result, bool) {
	if c.pend.take(id) == cl {
		callPool.Put(cl)
		return result{}, false
	}
	r := <-cl.ch // its deliverer took it: the result is on its way
	callPool.Put(cl)
	return r, true
}

// abandon ends a call whose context ended: a timeout, or a cancellation,
// which publishes a task.cancel so the worker stops the task.
func (c *Client) abandon(ctx context.Context, ch *amqp.Channel, t *Task, cl *call) (Reply, error) {
	if r, ok := c.release(t.RequestID, cl); ok {
		return c.finish(t, r) // the reply won the race
	}
	cause := context.Cause(ctx)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		c.timeouts.Add(1)
		return Reply{}, fmt.Errorf("%w while waiting for reply: %w", ErrTimeout, cause)
	}
	c.cancels.Add(1)
	deadline, _ := ctx.Deadline()
	if err := c.publishCancel(ch, t.RequestID); err != nil {
		// the link is down: publish it again once the link is back, until
		// the task's deadline (see lostCancels)
		c.lost.add(t.RequestID, deadline)
		c.logger.Debug("publishing task.cancel; kept for the reconnect", zap.String("request_id", t.RequestID), zap.Error(err))
	} else {
		// published, yet a worker that is reconnecting has no control
		// queue to receive it: publish it again on heartbeats for a while
		until := time.Now().Add(3*c.cfg.HeartbeatInterval + c.cfg.ReconnectMax)
		if deadline.Before(until) {
			until = deadline
		}
		c.lost.add(t.RequestID, until)
	}
	return Reply{}, fmt.Errorf("%w while waiting for reply: %w", ErrCanceled, cause)
}

// publishCancel publishes a task.cancel for request id on ch or, when ch is
// gone (the call was published before a reconnect), on the current session.
func (c *Client) publishCancel(ch *amqp.Channel, id string) error {
	msg, _ := json.Marshal(Cancel{Type: CancelType, RequestID: id})
	pub := amqp.Publishing{ContentType: "application/json", Timestamp: time.Now(), Body: msg}
	err := ch.Publish(ControlExchange, "", false, false, pub)
	if err == nil {
		return nil
	}
	if cs := c.cur.Load(); cs != nil {
		return cs.pubs[int(c.next.Add(1))%len(cs.pubs)].Publish(ControlExchange, "", false, false, pub)
	}
	return err
}

// republishCancels publishes again the cancels that could not be published
// while the link was down, until their tasks' deadlines (see lostCancels).
func (c *Client) republishCancels() {
	cs := c.cur.Load()
	if cs == nil {
		return
	}
	for _, id := range c.lost.live(time.Now()) {
		if err := c.publishCancel(cs.pubs[0], id); err != nil {
			return // the link is down again: kept for the next session
		}
	}
}

// finish turns a call's result into Call's return values.
func (c *Client) finish(t *Task, r result) (Reply, error) {
	switch r.kind {
	case outReply:
		var rep Reply
		if err := decodeReply(r.body, &rep); err != nil {
			return Reply{}, fmt.Errorf("decoding reply: %w", err)
		}
		if rep.Status == StatusFailed {
			msg := ""
			if rep.Error != nil {
				msg = *rep.Error
			}
			return rep, &TaskError{Code: rep.Code(), Message: msg}
		}
		return rep, nil
	case outReturned:
		return Reply{}, fmt.Errorf("%w: %q", ErrUnknownScript, t.ScriptName)
	case outUnavailable:
		return Reply{}, fmt.Errorf("waiting for reply: %w", ErrBrokerUnavailable)
	default:
		return Reply{}, ErrClosed
	}
}

func (c *Client) publishAccepted(ch *amqp.Channel, t *Task) {
	body, _ := json.Marshal(Event{
		Type: EventAccepted, RequestID: t.RequestID, ClientID: t.ClientID,
		ScriptName: t.ScriptName, Data: json.RawMessage("{}"), Timestamp: time.Now().UTC(),
	})
	if err := ch.Publish(EventExchange, EventAccepted, false, false, amqp.Publishing{
		ContentType: "application/json",
		Body:        body,
	}); err != nil {
		c.logger.Debug("publishing task.accepted", zap.String("request_id", t.RequestID), zap.Error(err))
	}
}

// onReply routes one reply to its call.
func (c *Client) onReply(correlationID string, body []byte) {
	// counted before the call hears of it, so that its caller reads a
	// count that includes it
	if call := c.pend.take(correlationID); call != nil {
		c.replies.Add(1)
		call.ch <- result{kind: outReply, body: body}
		return
	}
	c.late.Add(1)
	if ce := c.logger.Check(zapcore.DebugLevel, "dropping late or unknown reply"); ce != nil {
		ce.Write(zap.String("correlation_id", correlationID))
	}
}

// clientHandler is the Client's sessionHandler.
type clientHandler Client

func (h *clientHandler) up(s *session) error {
	c := (*Client)(h)
	cfg := &c.cfg
	topo, err := s.channel()
	if err != nil {
		return err
	}
	if err := declareExchanges(topo); err != nil {
		return err
	}
	// Events: heartbeats feed the registry; task.* feed OnEvent.
	evq, err := topo.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		return fmt.Errorf("declaring event queue: %w", err)
	}
	keys := []string{HeartbeatKey}
	if cfg.OnEvent != nil {
		keys = append(keys, "task.*")
	}
	for _, k := range keys {
		if err := topo.QueueBind(evq.Name, k, EventExchange, false, nil); err != nil {
			return fmt.Errorf("binding event queue to %q: %w", k, err)
		}
	}
	events, err := topo.Consume(evq.Name, "", true, true, false, false, nil)
	if err != nil {
		return fmt.Errorf("consuming events: %w", err)
	}
	s.goroutine(func() {
		c.consumeEvents(events)
		s.consumerEnded("event")
	})

	cs := &clientSession{s: s}
	if cfg.ReplyMode == ReplyQueue {
		rch, err := s.channel()
		if err != nil {
			return err
		}
		if _, err := rch.QueueDeclare(c.replyTo, true, false, false, false, amqp.Table{
			"x-expires": cfg.ReplyQueueExpires.Milliseconds(),
		}); err != nil {
			return fmt.Errorf("declaring reply queue %s: %w", c.replyTo, err)
		}
		replies, err := rch.Consume(c.replyTo, "", false, false, false, false, nil)
		if err != nil {
			return fmt.Errorf("consuming reply queue %s: %w", c.replyTo, err)
		}
		s.goroutine(func() {
			c.consumeReplies(rch, replies)
			s.consumerEnded("reply queue")
		})
	}
	for i := 0; i < cfg.PublishChannels; i++ {
		ch, err := s.channel()
		if err != nil {
			return err
		}
		if cfg.ReplyMode == ReplyDirect {
			// Direct reply-to: consume the pseudo-queue no-ack on the very
			// channel the tasks are published on, before publishing.
			replies, err := ch.Consume(DirectReplyTo, "", true, false, false, false, nil)
			if err != nil {
				return fmt.Errorf("consuming %s: %w", DirectReplyTo, err)
			}
			s.goroutine(func() {
				for d := range replies {
					c.onReply(d.CorrelationId, d.Body)
				}
				s.consumerEnded("direct reply-to")
			})
		}
		if err := ch.Confirm(false); err != nil {
			return fmt.Errorf("enabling publisher confirms: %w", err)
		}
		returns := ch.NotifyReturn(make(chan amqp.Return, 64))
		s.goroutine(func() {
			for r := range returns {
				// counted before the call hears of it, so that its
				// caller reads a count that includes it
				if call := c.pend.take(r.CorrelationId); call != nil {
					c.returns.Add(1)
					call.ch <- result{kind: outReturned}
				}
			}
		})
		cs.pubs = append(cs.pubs, ch)
	}
	c.reg.listening(time.Now())
	c.cur.Store(cs)
	c.republishCancels()
	return nil
}

func (h *clientHandler) stopping(*session) {}

func (h *clientHandler) down(s *session, err error) {
	c := (*Client)(h)
	if cs := c.cur.Load(); cs != nil && cs.s == s {
		c.cur.Store(nil)
	}
	c.reg.stopped()
	if c.cfg.ReplyMode == ReplyDirect {
		// A direct reply cannot reach a new connection: fail every call.
		if n := c.pend.failAll(result{kind: outUnavailable}); n > 0 {
			c.logger.Warn("failing calls in flight: direct reply-to link lost", zap.Int("calls", n), zap.Error(err))
		}
	}
}

// consumeReplies routes the replies of the named reply queue, acknowledging
// them in batches (a reply is acked after it was handed to its call, so one
// in transit when the link drops is redelivered on the next connection).
func (c *Client) consumeReplies(ch *amqp.Channel, replies <-chan amqp.Delivery) {
	tick := time.NewTicker(replyAckEvery)
	defer tick.Stop()
	var last uint64
	unacked := 0
	flush := func() {
		if unacked > 0 {
			_ = ch.Ack(last, true)
			unacked = 0
		}
	}
	for {
		select {
		case d, ok := <-replies:
			if !ok {
				return
			}
			c.onReply(d.CorrelationId, d.Body)
			last = d.DeliveryTag
			if unacked++; unacked >= replyAckBatch {
				flush()
			}
		case <-tick.C:
			flush()
		}
	}
}

// consumeEvents feeds heartbeats to the registry and task events to OnEvent.
func (c *Client) consumeEvents(events <-chan amqp.Delivery) {
	for d := range events {
		if d.RoutingKey == HeartbeatKey {
			var hb Heartbeat
			if err := json.Unmarshal(d.Body, &hb); err != nil || hb.WorkerID == "" {
				c.logger.Debug("dropping malformed heartbeat", zap.Error(err))
				continue
			}
			c.reg.heard(hb, time.Now())
			if c.lost.n.Load() > 0 {
				// a worker that reconnected after this client binds its
				// control queue only now
				c.republishCancels()
			}
			continue
		}
		if c.cfg.OnEvent == nil {
			continue
		}
		var ev Event
		if err := json.Unmarshal(d.Body, &ev); err != nil {
			c.logger.Debug("dropping malformed event", zap.String("routing_key", d.RoutingKey), zap.Error(err))
			continue
		}
		if ev.Type == "" {
			ev.Type = d.RoutingKey
		}
		c.cfg.OnEvent(ev)
	}
}

// declareExchanges declares the contract's exchanges (idempotent).
func declareExchanges(ch *amqp.Channel) error {
	for _, x := range []struct{ name, kind string }{
		{TaskExchange, amqp.ExchangeDirect},
		{EventExchange, amqp.ExchangeTopic},
		{ControlExchange, amqp.ExchangeFanout},
	} {
		if err := ch.ExchangeDeclare(x.name, x.kind, true, false, false, false, nil); err != nil {
			return fmt.Errorf("declaring exchange %s: %w", x.name, err)
		}
	}
	return nil
}

// newRequestID returns a random UUIDv4 (122 random bits).
func newRequestID() string {
	var b [16]byte
	fillRandom(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	const hexd = "0123456789abcdef"
	var s [36]byte
	j := 0
	for i, v := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			s[j] = '-'
			j++
		}
		s[j], s[j+1] = hexd[v>>4], hexd[v&0x0f]
		j += 2
	}
	return string(s[:])
}

// ceilMilli returns t in unix milliseconds, rounded up, so that a worker's
// deadline (x-deadline-ms) is never before the caller's.
func ceilMilli(t time.Time) int64 {
	return (t.UnixNano() + int64(time.Millisecond) - 1) / int64(time.Millisecond)
}

package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// cancelRetention is how long a server remembers a cancelled request id, so
// that the task is skipped if it arrives later (longer than any timeout).
const cancelRetention = time.Hour

// Causes of a task context's end.
var (
	errTaskDeadline  = errors.New("task deadline passed")
	errTaskCancelled = errors.New("task cancelled by its caller")
	errSessionLost   = errors.New("broker link lost: the task will be redelivered")
	errGraceExpired  = errors.New("graceful stop: grace period expired, task requeued")
)

// Handler runs the tasks of a Server.
type Handler interface {
	// Scripts lists the scripts served: bound as routing keys on
	// scrape.tasks and advertised in heartbeats.
	Scripts() []ScriptInfo
	// Run runs one task. ctx ends at the task's deadline (x-deadline-ms) or
	// when the task is cancelled (task.cancel on scrape.control). Return a
	// *TaskError to choose the failure's code; any other error is
	// WORKER_ERROR (SCRIPT_TIMEOUT if ctx hit the deadline, CANCELLED if
	// cancelled).
	Run(ctx context.Context, t Task) (data json.RawMessage, err error)
}

// HandlerFunc runs a task; see Handler.Run.
type HandlerFunc func(ctx context.Context, t Task) (json.RawMessage, error)

// FuncHandler is a Handler serving a fixed list of scripts with one function.
type FuncHandler struct {
	// ScriptList is returned by Scripts.
	ScriptList []ScriptInfo
	// Func runs every task.
	Func HandlerFunc
}

// Scripts implements Handler.
func (h FuncHandler) Scripts() []ScriptInfo { return h.ScriptList }

// Run implements Handler.
func (h FuncHandler) Run(ctx context.Context, t Task) (json.RawMessage, error) { return h.Func(ctx, t) }

// Server is the worker side of the RPC link: it consumes its pool's task
// queue, runs each task with its Handler, replies, then acknowledges.
type Server struct {
	cfg       ServerConfig
	h         Handler
	logger    *zap.Logger
	link      *link
	startedAt time.Time

	serving     atomic.Bool
	serveCancel context.CancelFunc // guarded by mu
	served      chan struct{}      // closed when Serve returns
	force       chan struct{}      // closed by Shutdown when its context ends
	forceOnce   sync.Once
	ready       chan struct{}
	readyOnce   sync.Once
	refresh     chan struct{}
	draining    atomic.Bool

	cur atomic.Pointer[serverSession]

	bindMu sync.Mutex
	bound  []string // routing keys bound by this server

	mu        sync.Mutex
	running   map[string]context.CancelCauseFunc
	cancelled map[string]time.Time

	tasks, completed, failed, expired, cancelledN, redelivered, deadLettered atomic.Uint64
	inFlight                                                                 atomic.Int64
}

// ServerStats are the server's counters since it was created.
type ServerStats struct {
	// Tasks counts deliveries received; Completed and Failed the replies
	// sent; Expired the tasks skipped past their deadline; Cancelled the
	// tasks cancelled (running or skipped); Redelivered the deliveries the
	// broker marked redelivered; DeadLettered the poison tasks answered
	// from the dead-letter queue.
	Tasks, Completed, Failed, Expired, Cancelled, Redelivered, DeadLettered uint64
	// InFlight is the number of tasks running now.
	InFlight int64
}

// serverSession is what the server built on one connection.
type serverSession struct {
	s       *session
	topo    *amqp.Channel
	consume *amqp.Channel
	pub     *amqp.Channel // replies, in confirm mode
	ev      *amqp.Channel // events and heartbeats
	// ctx parents every task context of the session; it ends with
	// errSessionLost or errGraceExpired.
	ctx    context.Context
	cancel context.CancelCauseFunc
	// idle is closed once every task worker of the session returned.
	idle chan struct{}
}

// NewServer validates cfg and returns a Server running h. It does no
// network I/O: Serve connects.
func NewServer(cfg ServerConfig, h Handler) (*Server, error) {
	if h == nil {
		return nil, errors.New("invalid server config: handler: required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid server config: %w", err)
	}
	cfg.setDefaults()
	s := &Server{
		cfg:       cfg,
		h:         h,
		logger:    cfg.Logger,
		ready:     make(chan struct{}),
		served:    make(chan struct{}),
		force:     make(chan struct{}),
		refresh:   make(chan struct{}, 1),
		running:   make(map[string]context.CancelCauseFunc),
		cancelled: make(map[string]time.Time),
	}
	s.link = &link{
		url: cfg.URL, name: cfg.ConnectionName,
		min: cfg.ReconnectMin, max: cfg.ReconnectMax,
		h: (*serverHandler)(s), logger: s.logger,
	}
	return s, nil
}

// WorkerID returns the server's worker id.
func (s *Server) WorkerID() string { return s.cfg.WorkerID }

// Serve connects (and reconnects), declares the topology and consumes until
// ctx ends. Then it stops gracefully: it stops consuming, lets in-flight
// tasks finish within the grace period, requeues the rest, and returns nil.
func (s *Server) Serve(ctx context.Context) error {
	if !s.serving.CompareAndSwap(false, true) {
		return errors.New("server is already serving")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer close(s.served)
	s.mu.Lock()
	s.serveCancel = cancel
	s.mu.Unlock()
	s.startedAt = time.Now().UTC()
	hbCtx, stopHB := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.heartbeatLoop(hbCtx)
	}()
	s.link.run(ctx)
	stopHB()
	wg.Wait()
	return nil
}

// Shutdown stops a running Serve gracefully, like cancelling its context,
// and waits until Serve returned. If ctx ends first, tasks still running are
// cancelled and requeued at once (not after the grace period), and Shutdown
// returns ctx's error once Serve returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	cancel := s.serveCancel
	s.mu.Unlock()
	if cancel == nil {
		return nil // not serving
	}
	cancel()
	select {
	case <-s.served:
		return nil
	case <-ctx.Done():
		s.forceOnce.Do(func() { close(s.force) })
		<-s.served
		return fmt.Errorf("shutting down: %w", context.Cause(ctx))
	}
}

// Ready returns a channel closed once the server consumes for the first time.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Refresh tells the server that Handler.Scripts changed: it binds the new
// routing keys, unbinds the removed ones, and publishes a heartbeat. Every
// worker of a pool should serve the same scripts, since the bindings belong
// to the pool's queue.
func (s *Server) Refresh() {
	select {
	case s.refresh <- struct{}{}:
	default:
	}
}

// Stats returns the server's counters.
func (s *Server) Stats() ServerStats {
	return ServerStats{
		Tasks:        s.tasks.Load(),
		Completed:    s.completed.Load(),
		Failed:       s.failed.Load(),
		Expired:      s.expired.Load(),
		Cancelled:    s.cancelledN.Load(),
		Redelivered:  s.redelivered.Load(),
		DeadLettered: s.deadLettered.Load(),
		InFlight:     s.inFlight.Load(),
	}
}

// serverHandler is the Server's sessionHandler.
type serverHandler Server

func (h *serverHandler) up(ss *session) error {
	s := (*Server)(h)
	cfg := &s.cfg
	sess := &serverSession{s: ss, idle: make(chan struct{})}
	var err error
	if sess.topo, err = ss.channel(); err != nil {
		return err
	}
	if err := declareExchanges(sess.topo); err != nil {
		return err
	}
	queue := TaskQueueName(cfg.Pool)
	var args amqp.Table
	if cfg.QueueType == QueueQuorum {
		if err := sess.topo.ExchangeDeclare(DeadLetterExchange, amqp.ExchangeDirect, true, false, false, false, nil); err != nil {
			return fmt.Errorf("declaring exchange %s: %w", DeadLetterExchange, err)
		}
		for _, q := range []string{DeadLetterQueueName(cfg.Pool), PoisonQueueName(cfg.Pool)} {
			if _, err := sess.topo.QueueDeclare(q, true, false, false, false, nil); err != nil {
				return fmt.Errorf("declaring queue %s: %w", q, err)
			}
		}
		if err := sess.topo.QueueBind(DeadLetterQueueName(cfg.Pool), cfg.Pool, DeadLetterExchange, false, nil); err != nil {
			return fmt.Errorf("binding queue %s: %w", DeadLetterQueueName(cfg.Pool), err)
		}
		args = amqp.Table{
			amqp.QueueTypeArg:           amqp.QueueTypeQuorum,
			"x-delivery-limit":          int64(cfg.DeliveryLimit),
			"x-dead-letter-exchange":    DeadLetterExchange,
			"x-dead-letter-routing-key": cfg.Pool,
		}
	}
	if _, err := sess.topo.QueueDeclare(queue, true, false, false, false, args); err != nil {
		return fmt.Errorf("declaring queue %s: %w", queue, err)
	}
	if err := s.bind(sess.topo, true); err != nil {
		return err
	}
	ctl, err := sess.topo.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		return fmt.Errorf("declaring control queue: %w", err)
	}
	if err := sess.topo.QueueBind(ctl.Name, "", ControlExchange, false, nil); err != nil {
		return fmt.Errorf("binding control queue: %w", err)
	}
	controls, err := sess.topo.Consume(ctl.Name, "", true, true, false, false, nil)
	if err != nil {
		return fmt.Errorf("consuming control queue: %w", err)
	}
	ss.goroutine(func() {
		s.consumeControl(controls)
		ss.consumerEnded("control")
	})

	if sess.pub, err = ss.channel(); err != nil {
		return err
	}
	if err := sess.pub.Confirm(false); err != nil {
		return fmt.Errorf("enabling publisher confirms: %w", err)
	}
	if sess.ev, err = ss.channel(); err != nil {
		return err
	}
	sess.ctx, sess.cancel = context.WithCancelCause(context.Background())
	ss.goroutine(func() {
		<-ss.dead
		sess.cancel(errSessionLost)
	})

	if cfg.QueueType == QueueQuorum {
		dch, err := ss.channel()
		if err != nil {
			return err
		}
		if err := dch.Qos(1, 0, false); err != nil {
			return fmt.Errorf("setting prefetch: %w", err)
		}
		dead, err := dch.Consume(DeadLetterQueueName(cfg.Pool), "", false, false, false, false, nil)
		if err != nil {
			return fmt.Errorf("consuming %s: %w", DeadLetterQueueName(cfg.Pool), err)
		}
		ss.goroutine(func() {
			s.consumeDead(sess, dead)
			ss.consumerEnded("dead-letter")
		})
	}

	s.cur.Store(sess)
	if sess.consume, err = ss.channel(); err != nil {
		return err
	}
	if err := sess.consume.Qos(cfg.Concurrency, 0, false); err != nil {
		return fmt.Errorf("setting prefetch: %w", err)
	}
	deliveries, err := sess.consume.Consume(queue, cfg.WorkerID, false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consuming %s: %w", queue, err)
	}
	var workers sync.WaitGroup
	for range cfg.Concurrency {
		workers.Add(1)
		ss.goroutine(func() {
			defer workers.Done()
			for d := range deliveries {
				s.handle(sess, &d)
			}
		})
	}
	ss.goroutine(func() {
		workers.Wait()
		close(sess.idle)
		if !s.draining.Load() {
			ss.consumerEnded("task queue")
		}
	})
	s.publishHeartbeat(sess)
	s.readyOnce.Do(func() { close(s.ready) })
	return nil
}

// stopping stops consuming and lets in-flight tasks finish within the grace
// period; tasks still running then are cancelled and requeued.
func (h *serverHandler) stopping(ss *session) {
	s := (*Server)(h)
	s.draining.Store(true)
	sess := s.cur.Load()
	if sess == nil || sess.s != ss {
		return
	}
	if err := sess.consume.Cancel(s.cfg.WorkerID, false); err != nil && !ss.isDead() {
		s.logger.Warn("cancelling consumer", zap.Error(err))
	}
	t := time.NewTimer(s.cfg.GracePeriod)
	defer t.Stop()
	select {
	case <-sess.idle:
		return
	case <-ss.dead:
	case <-s.force:
	case <-t.C:
		s.logger.Warn("grace period expired, requeueing tasks in flight",
			zap.Int64("in_flight", s.inFlight.Load()), zap.Duration("grace_period", s.cfg.GracePeriod))
	}
	sess.cancel(errGraceExpired)
	<-sess.idle
}

func (h *serverHandler) down(ss *session, err error) {
	s := (*Server)(h)
	if sess := s.cur.Load(); sess != nil && sess.s == ss {
		s.cur.Store(nil)
	}
	if sess := s.cur.Load(); sess == nil && err != nil {
		s.logger.Debug("server session ended", zap.Error(err))
	}
}

// bind binds the task queue to the handler's scripts; with all, every one,
// else only the changes since the last bind (and unbinds removed ones).
func (s *Server) bind(ch *amqp.Channel, all bool) error {
	s.bindMu.Lock()
	defer s.bindMu.Unlock()
	queue := TaskQueueName(s.cfg.Pool)
	var want []string
	for _, si := range s.h.Scripts() {
		if si.Name != "" && !slices.Contains(want, si.Name) {
			want = append(want, si.Name)
		}
	}
	for _, k := range want {
		if !all && slices.Contains(s.bound, k) {
			continue
		}
		if err := ch.QueueBind(queue, k, TaskExchange, false, nil); err != nil {
			return fmt.Errorf("binding %s to script %q: %w", queue, k, err)
		}
	}
	for _, k := range s.bound {
		if !slices.Contains(want, k) {
			if err := ch.QueueUnbind(queue, k, TaskExchange, nil); err != nil {
				return fmt.Errorf("unbinding %s from script %q: %w", queue, k, err)
			}
		}
	}
	s.bound = want
	return nil
}

// heartbeatLoop publishes heartbeats, applies Refresh, and forgets old
// cancelled ids, until ctx ends.
func (s *Server) heartbeatLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.forgetCancelled(time.Now())
		case <-s.refresh:
			if sess := s.cur.Load(); sess != nil {
				if err := s.bind(sess.topo, false); err != nil {
					s.logger.Warn("refreshing script bindings", zap.Error(err))
				}
			}
		}
		if sess := s.cur.Load(); sess != nil {
			s.publishHeartbeat(sess)
		}
	}
}

func (s *Server) publishHeartbeat(sess *serverSession) {
	now := time.Now().UTC()
	hb := Heartbeat{
		WorkerID: s.cfg.WorkerID, Pool: s.cfg.Pool,
		InFlight: int(min(s.inFlight.Load(), int64(s.cfg.Concurrency))), Capacity: s.cfg.Concurrency,
		Scripts: s.h.Scripts(), StartedAt: s.startedAt, Timestamp: now,
	}
	if hb.Scripts == nil {
		hb.Scripts = []ScriptInfo{}
	}
	body, err := json.Marshal(&hb)
	if err != nil {
		s.logger.Error("encoding heartbeat", zap.Error(err))
		return
	}
	if err := sess.ev.Publish(EventExchange, HeartbeatKey, false, false, amqp.Publishing{
		ContentType: "application/json", Timestamp: now, Body: body,
	}); err != nil {
		s.logger.Debug("publishing heartbeat", zap.Error(err))
	}
}

// publishEvent publishes a task event (fire and forget).
func (s *Server) publishEvent(sess *serverSession, typ string, t *Task, data any) {
	raw := json.RawMessage("{}")
	if data != nil {
		if b, err := json.Marshal(data); err == nil {
			raw = b
		}
	}
	id := s.cfg.WorkerID
	body, err := json.Marshal(Event{
		Type: typ, RequestID: t.RequestID, ClientID: t.ClientID, ScriptName: t.ScriptName,
		WorkerID: &id, Data: raw, Timestamp: time.Now().UTC(),
	})
	if err != nil {
		return
	}
	if err := sess.ev.Publish(EventExchange, typ, false, false, amqp.Publishing{
		ContentType: "application/json", Body: body,
	}); err != nil {
		if ce := s.logger.Check(zapcore.DebugLevel, "publishing event"); ce != nil {
			ce.Write(zap.String("type", typ), zap.String("request_id", t.RequestID), zap.Error(err))
		}
	}
}

// handle processes one delivery: skip it (expired, cancelled, stopping) or
// run it, reply, then ack.
func (s *Server) handle(sess *serverSession, d *amqp.Delivery) {
	s.tasks.Add(1)
	if s.draining.Load() {
		_ = d.Nack(false, true) // prefetched during a graceful stop: back to the queue
		return
	}
	if d.Redelivered {
		s.redelivered.Add(1)
	}
	start := time.Now()
	var t Task
	if err := json.Unmarshal(d.Body, &t); err != nil {
		t.RequestID, t.ScriptName = d.CorrelationId, d.RoutingKey
		s.reply(sess, d, &t, start, nil, &TaskError{Code: CodeWorkerError, Message: "malformed task: " + err.Error()}, nil)
		return
	}
	if t.RequestID == "" {
		t.RequestID = d.CorrelationId
	}
	if t.ScriptName == "" {
		t.ScriptName = d.RoutingKey
	}
	if t.ClientID == "" {
		t.ClientID, _ = d.Headers[HeaderClientID].(string)
	}
	deadline, hasDeadline := headerInt(d.Headers, HeaderDeadlineMS)
	if hasDeadline && start.UnixMilli() >= deadline {
		_ = d.Ack(false)
		s.expired.Add(1)
		s.publishEvent(sess, EventExpired, &t, map[string]any{"deadline_ms": deadline})
		return
	}
	if s.isCancelled(t.RequestID) {
		_ = d.Ack(false)
		s.cancelledN.Add(1)
		s.publishEvent(sess, EventCancelled, &t, nil)
		return
	}

	ctx, cancel := context.WithCancelCause(sess.ctx)
	defer cancel(nil)
	if hasDeadline {
		var stop context.CancelFunc
		ctx, stop = context.WithDeadlineCause(ctx, time.UnixMilli(deadline), errTaskDeadline)
		defer stop()
	}
	s.mu.Lock()
	s.running[t.RequestID] = cancel
	s.mu.Unlock()
	s.inFlight.Add(1)
	s.publishEvent(sess, EventStarted, &t, nil)
	data, err := s.run(ctx, t)
	s.inFlight.Add(-1)
	s.mu.Lock()
	delete(s.running, t.RequestID)
	s.mu.Unlock()

	switch context.Cause(sess.ctx) {
	case errSessionLost:
		return // the channel is gone: the broker redelivers the task
	case errGraceExpired:
		_ = d.Nack(false, true)
		return
	}
	s.reply(sess, d, &t, start, data, err, ctx)
}

// run calls the handler, turning a panic into an error.
func (s *Server) run(ctx context.Context, t Task) (data json.RawMessage, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.logger.Error("handler panicked", zap.String("request_id", t.RequestID),
				zap.String("script_name", t.ScriptName), zap.Any("panic", p))
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	return s.h.Run(ctx, t)
}

// reply publishes the task's reply, waits for the broker's confirm, then
// acks the task; it also publishes task.completed/failed/cancelled.
func (s *Server) reply(sess *serverSession, d *amqp.Delivery, t *Task, start time.Time, data json.RawMessage, runErr error, ctx context.Context) {
	now := time.Now()
	rep := Reply{
		RequestID: t.RequestID, Status: StatusCompleted,
		ExecutionTime: now.Sub(start).Seconds(), CompletedAt: now.UTC(), WorkerID: s.cfg.WorkerID,
	}
	var code string
	if runErr != nil {
		code, msg := failure(ctx, runErr)
		rep.Status, rep.Error, rep.ErrorCode = StatusFailed, &msg, &code
	} else {
		rep.Data = data
		if len(rep.Data) == 0 {
			rep.Data = json.RawMessage("null")
		}
	}
	if rep.ErrorCode != nil {
		code = *rep.ErrorCode
	}
	body, err := json.Marshal(&rep)
	if err != nil {
		// Data was not valid JSON: report that instead.
		msg, c := "handler returned invalid JSON: "+err.Error(), CodeWorkerError
		rep.Status, rep.Data, rep.Error, rep.ErrorCode, code = StatusFailed, nil, &msg, &c, c
		body, _ = json.Marshal(&rep)
	}
	if d.ReplyTo != "" {
		dc, err := sess.pub.PublishWithDeferredConfirm("", d.ReplyTo, false, false, amqp.Publishing{
			ContentType:   "application/json",
			CorrelationId: d.CorrelationId,
			Timestamp:     now,
			// persistent: a confirmed reply waiting in the gateway's
			// durable reply queue survives a broker restart (the task is
			// acked once the reply is confirmed, so it is not run again)
			DeliveryMode: amqp.Persistent,
			Body:         body,
		})
		if err != nil || !dc.Wait() {
			// Not confirmed: leave the task to be redelivered.
			_ = d.Nack(false, true)
			if ce := s.logger.Check(zapcore.DebugLevel, "reply not confirmed, requeueing task"); ce != nil {
				ce.Write(zap.String("request_id", t.RequestID), zap.Error(err))
			}
			return
		}
	}
	_ = d.Ack(false)
	ev := map[string]any{"execution_time": rep.ExecutionTime}
	switch {
	case code == "":
		s.completed.Add(1)
		s.publishEvent(sess, EventCompleted, t, ev)
	case code == CodeCancelled:
		s.failed.Add(1)
		s.cancelledN.Add(1)
		ev["error_code"] = code
		s.publishEvent(sess, EventCancelled, t, ev)
	default:
		s.failed.Add(1)
		ev["error_code"] = code
		s.publishEvent(sess, EventFailed, t, ev)
	}
}

// failure returns the error code and message of a failed run.
func failure(ctx context.Context, err error) (code, msg string) {
	var te *TaskError
	if errors.As(err, &te) && te.Code != "" {
		return te.Code, te.Message
	}
	if ctx != nil {
		switch context.Cause(ctx) {
		case errTaskDeadline:
			return CodeScriptTimeout, err.Error()
		case errTaskCancelled:
			return CodeCancelled, "cancelled by its caller"
		}
	}
	return CodeWorkerError, err.Error()
}

// consumeControl handles task.cancel messages.
func (s *Server) consumeControl(controls <-chan amqp.Delivery) {
	for d := range controls {
		var c Cancel
		if err := json.Unmarshal(d.Body, &c); err != nil || c.Type != CancelType || c.RequestID == "" {
			continue
		}
		s.mu.Lock()
		s.cancelled[c.RequestID] = time.Now()
		cancel := s.running[c.RequestID]
		s.mu.Unlock()
		if cancel != nil {
			cancel(errTaskCancelled)
		}
	}
}

func (s *Server) isCancelled(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.cancelled) == 0 {
		return false
	}
	_, ok := s.cancelled[id]
	return ok
}

func (s *Server) forgetCancelled(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, at := range s.cancelled {
		if now.Sub(at) > cancelRetention {
			delete(s.cancelled, id)
		}
	}
}

// consumeDead answers the callers of dead-lettered (poison) tasks and parks
// the tasks in the poison queue. Tasks dead-lettered because they expired
// are dropped: their callers gave up.
func (s *Server) consumeDead(sess *serverSession, dead <-chan amqp.Delivery) {
	for d := range dead {
		reason, _ := d.Headers["x-first-death-reason"].(string)
		var t Task
		_ = json.Unmarshal(d.Body, &t)
		if t.RequestID == "" {
			t.RequestID = d.CorrelationId
		}
		if t.ScriptName == "" {
			t.ScriptName = d.RoutingKey
		}
		if reason != "delivery_limit" {
			_ = d.Ack(false)
			continue
		}
		s.deadLettered.Add(1)
		s.logger.Warn("poison task dead-lettered after the delivery limit",
			zap.String("request_id", t.RequestID), zap.String("script_name", t.ScriptName),
			zap.Int("delivery_limit", s.cfg.DeliveryLimit))
		// Park it first (confirmed), then answer its caller.
		dc, err := sess.pub.PublishWithDeferredConfirm("", PoisonQueueName(s.cfg.Pool), false, false, amqp.Publishing{
			Headers: d.Headers, ContentType: d.ContentType, DeliveryMode: amqp.Persistent,
			CorrelationId: d.CorrelationId, ReplyTo: d.ReplyTo, MessageId: d.MessageId,
			Timestamp: d.Timestamp, Body: d.Body,
		})
		if err != nil || !dc.Wait() {
			_ = d.Nack(false, true)
			continue
		}
		deadline, ok := headerInt(d.Headers, HeaderDeadlineMS)
		if d.ReplyTo != "" && (!ok || time.Now().UnixMilli() < deadline) {
			msg := fmt.Sprintf("task dead-lettered: its workers died running it more than the delivery limit (%d)", s.cfg.DeliveryLimit)
			s.reply(sess, &d, &t, time.Now(), nil, &TaskError{Code: CodeWorkerError, Message: msg}, nil)
			continue
		}
		_ = d.Ack(false)
	}
}

// headerInt reads an integer header whatever its AMQP type.
func headerInt(h amqp.Table, k string) (int64, bool) {
	switch v := h[k].(type) {
	case int64:
		return v, true
	case int32:
		return int64(v), true
	case int16:
		return int64(v), true
	case int8:
		return int64(v), true
	case int:
		return int64(v), true
	case uint64:
		return int64(v), true
	case uint32:
		return int64(v), true
	case uint16:
		return int64(v), true
	case uint8:
		return int64(v), true
	case float64:
		return int64(v), true
	case float32:
		return int64(v), true
	case string:
		n, err := strconv.ParseInt(v, 10, 64)
		return n, err == nil
	}
	return 0, false
}

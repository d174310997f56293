package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// callT runs one Call with a timeout.
func callT(c *Client, timeout time.Duration, t Task) (Reply, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return c.Call(ctx, t)
}

// checkEcho checks that rep echoes the parameters {"i": i}.
func checkEcho(rep Reply, i int) error {
	var got struct {
		I *int `json:"i"`
	}
	if err := json.Unmarshal(rep.Data, &got); err != nil {
		return fmt.Errorf("call %d: decoding data %s: %v", i, rep.Data, err)
	}
	if got.I == nil || *got.I != i {
		return fmt.Errorf("call %d: got the reply of another call: %s", i, rep.Data)
	}
	return nil
}

func TestThousandConcurrentCalls(t *testing.T) {
	t.Parallel()
	vh := newVHost(t)
	startServer(t, ServerConfig{URL: vh.url, Concurrency: 64}, echoHandler)
	c := startClient(t, ClientConfig{URL: vh.url})

	const n = 1000
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep, err := callT(c, 20*time.Second, echoTask(map[string]any{"i": i, "pad": fmt.Sprintf("payload-%d", i)}))
			if err == nil {
				err = checkEcho(rep, i)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if st := c.Stats(); st.Replies != n || st.InFlight != 0 || st.LateReplies != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestUnknownScriptFailsFast(t *testing.T) {
	t.Parallel()
	vh := newVHost(t)
	startServer(t, ServerConfig{URL: vh.url}, echoHandler)
	c := startClient(t, ClientConfig{URL: vh.url})
	for i := range 5 {
		start := time.Now()
		_, err := callT(c, 30*time.Second, Task{ScriptName: "no-such-script", ClientID: "test"})
		if d := time.Since(start); d >= 100*time.Millisecond {
			t.Errorf("call %d: took %s, want < 100ms", i, d)
		}
		if !errors.Is(err, ErrUnknownScript) {
			t.Fatalf("call %d: err = %v, want ErrUnknownScript", i, err)
		}
	}
	if st := c.Stats(); st.Returns != 5 || st.InFlight != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestSlowWorkerTimesOutAndLateReplyIsCounted(t *testing.T) {
	t.Parallel()
	vh := newVHost(t)
	h := FuncHandler{ScriptList: echoScripts, Func: func(ctx context.Context, t Task) (json.RawMessage, error) {
		time.Sleep(600 * time.Millisecond) // ignores ctx: a script that overruns
		return t.Parameters, nil
	}}
	srv := startServer(t, ServerConfig{URL: vh.url}, h)
	c := startClient(t, ClientConfig{URL: vh.url})

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	deadline, _ := ctx.Deadline()
	_, err := c.Call(ctx, echoTask(map[string]any{"x": 1}))
	late := time.Since(deadline)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if late < 0 || late > 100*time.Millisecond {
		t.Errorf("returned %s after the deadline, want within 100ms", late)
	}
	// The reply arrives after the call ended: it is dropped and counted.
	waitFor(t, 5*time.Second, "late reply counted", func() bool { return c.Stats().LateReplies == 1 })
	if st := c.Stats(); st.Timeouts != 1 || st.Replies != 0 || st.InFlight != 0 {
		t.Errorf("client stats = %+v", st)
	}
	// The server counts the task once the broker confirmed its reply.
	waitFor(t, 5*time.Second, "server counted the task", func() bool { return srv.Stats().Completed == 1 })
}

func TestWorkerStopsTaskAtItsDeadline(t *testing.T) {
	t.Parallel()
	vh := newVHost(t)
	srv := startServer(t, ServerConfig{URL: vh.url}, echoHandler)
	c := startClient(t, ClientConfig{URL: vh.url})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	deadline, _ := ctx.Deadline()
	_, err := c.Call(ctx, echoTask(map[string]any{"sleep_ms": 5000}))
	// The worker's context ends at x-deadline-ms, the caller's at the same
	// instant: the call ends with ErrTimeout, or with the worker's
	// SCRIPT_TIMEOUT reply if it won the race.
	var te *TaskError
	if !errors.Is(err, ErrTimeout) && !(errors.As(err, &te) && te.Code == CodeScriptTimeout) {
		t.Fatalf("err = %v, want ErrTimeout or SCRIPT_TIMEOUT", err)
	}
	if late := time.Since(deadline); late > 100*time.Millisecond {
		t.Errorf("returned %s after the deadline, want within 100ms", late)
	}
	waitFor(t, 5*time.Second, "worker answered SCRIPT_TIMEOUT", func() bool { return srv.Stats().Failed == 1 })
	waitFor(t, 5*time.Second, "reply received", func() bool { st := c.Stats(); return st.Replies+st.LateReplies == 1 })
}

func TestExpiredTaskNeverRuns(t *testing.T) {
	t.Parallel()
	vh := newVHost(t)
	var mu sync.Mutex
	ran := map[string]bool{}
	h := FuncHandler{ScriptList: echoScripts, Func: func(ctx context.Context, t Task) (json.RawMessage, error) {
		mu.Lock()
		ran[t.RequestID] = true
		mu.Unlock()
		return echo(ctx, t)
	}}
	srv := startServer(t, ServerConfig{URL: vh.url, Concurrency: 1}, h)
	var expiredEvents atomic.Int32
	c := startClient(t, ClientConfig{URL: vh.url, OnEvent: func(e Event) {
		if e.Type == EventExpired {
			expiredEvents.Add(1)
		}
	}})

	// 1. The only task slot is busy; a short task waits in the queue past
	// its deadline.
	busy := make(chan error, 1)
	go func() {
		_, err := callT(c, 10*time.Second, echoTask(map[string]any{"sleep_ms": 700}))
		busy <- err
	}()
	waitFor(t, 5*time.Second, "busy task running", func() bool { return srv.Stats().InFlight == 1 })
	short := echoTask(map[string]any{"i": 1})
	short.RequestID = newRequestID()
	if _, err := callT(c, 200*time.Millisecond, short); !errors.Is(err, ErrTimeout) {
		t.Fatalf("queued call: err = %v, want ErrTimeout", err)
	}
	if err := <-busy; err != nil {
		t.Fatalf("busy call: %v", err)
	}

	// 2. A task whose x-deadline-ms passed but that has no broker TTL (a
	// clock skew, or a TTL-less publisher) reaches the worker: it is acked
	// without running and reported as task.expired.
	conn, err := amqp.Dial(vh.url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	stale := echoTask(map[string]any{"i": 2})
	stale.RequestID = newRequestID()
	body, _ := json.Marshal(stale)
	if err := ch.Publish(TaskExchange, "echo", true, false, amqp.Publishing{
		ContentType: "application/json", CorrelationId: stale.RequestID, ReplyTo: ReplyQueueName("nobody"),
		Headers: amqp.Table{HeaderDeadlineMS: time.Now().Add(-time.Second).UnixMilli()}, Body: body,
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "stale task skipped", func() bool { return srv.Stats().Expired == 1 })
	waitFor(t, 5*time.Second, "task.expired event", func() bool { return expiredEvents.Load() == 1 })
	// Let the broker deliver anything left, then check neither ran.
	if _, err := callT(c, 5*time.Second, echoTask(map[string]any{"i": 3})); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if ran[short.RequestID] || ran[stale.RequestID] {
		t.Errorf("an expired task ran: short=%v stale=%v", ran[short.RequestID], ran[stale.RequestID])
	}
}

func TestWorkerDiesMidTaskTaskIsRedelivered(t *testing.T) {
	t.Parallel()
	vh := newVHost(t)
	started := make(chan struct{}, 1)
	stuck := FuncHandler{ScriptList: echoScripts, Func: func(ctx context.Context, t Task) (json.RawMessage, error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, context.Cause(ctx)
	}}
	a, err := NewServer(ServerConfig{URL: vh.url, WorkerID: "a", Logger: testLogger(t), GracePeriod: time.Second}, stuck)
	if err != nil {
		t.Fatal(err)
	}
	actx, stopA := context.WithCancel(context.Background())
	aDone := make(chan error, 1)
	go func() { aDone <- a.Serve(actx) }()
	defer stopA()
	<-a.Ready()
	c := startClient(t, ClientConfig{URL: vh.url})

	res := make(chan error, 1)
	var rep Reply
	go func() {
		var err error
		rep, err = callT(c, 15*time.Second, echoTask(map[string]any{"i": 7}))
		res <- err
	}()
	<-started
	// Worker a dies: its connection drops and it does not come back.
	stopA()
	_ = a.cur.Load().s.conn.Close()
	if err := <-aDone; err != nil {
		t.Fatal(err)
	}
	b := startServer(t, ServerConfig{URL: vh.url, WorkerID: "b"}, echoHandler)
	if err := <-res; err != nil {
		t.Fatalf("call: %v", err)
	}
	if err := checkEcho(rep, 7); err != nil {
		t.Fatal(err)
	}
	if rep.WorkerID != "b" {
		t.Errorf("answered by %q, want b", rep.WorkerID)
	}
	waitFor(t, 5*time.Second, "worker b counts the task", func() bool {
		st := b.Stats()
		return st.Redelivered == 1 && st.Completed == 1
	})
}

// TestBrokerClosesConnectionsQueueMode closes every connection (gateway and
// worker) while 200 calls wait for replies: every call (all confirmed) gets
// its own reply, none waits past its deadline, calls work after the
// reconnect, and the goroutine-leak check of TestMain passes.
func TestBrokerClosesConnectionsQueueMode(t *testing.T) {
	t.Parallel()
	vh := newVHost(t)
	srv := startServer(t, ServerConfig{URL: vh.url, Concurrency: 256}, echoHandler)
	c := startClient(t, ClientConfig{URL: vh.url})

	const n = 200
	const timeout = 20 * time.Second
	type res struct {
		i       int
		err     error
		overrun time.Duration
	}
	results := make(chan res, n)
	for i := range n {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			deadline, _ := ctx.Deadline()
			rep, err := c.Call(ctx, echoTask(map[string]any{"i": i, "sleep_ms": 1500}))
			if err == nil {
				err = checkEcho(rep, i)
			}
			results <- res{i, err, time.Since(deadline)}
		}()
	}
	waitFor(t, 10*time.Second, "200 tasks confirmed", func() bool { return c.confirmed.Load() == n })
	waitFor(t, 10*time.Second, "tasks running", func() bool { return srv.Stats().InFlight > 0 })
	vh.closeAllConnections(t)
	for range n {
		r := <-results
		if r.err != nil {
			t.Errorf("call %d: %v", r.i, r.err)
		}
		if r.overrun > 100*time.Millisecond {
			t.Errorf("call %d: ended %s after its deadline", r.i, r.overrun)
		}
	}
	st := c.Stats()
	if st.Reconnects < 1 || st.Replies != n || st.InFlight != 0 {
		t.Errorf("client stats = %+v", st)
	}
	waitFor(t, 10*time.Second, "reconnected", c.Connected)
	if _, err := callT(c, 5*time.Second, echoTask(map[string]any{"i": 1})); err != nil {
		t.Fatalf("call after reconnect: %v", err)
	}
	t.Logf("client %+v; server %+v", c.Stats(), srv.Stats())
}

// TestBrokerClosesConnectionsWhilePublishing closes every connection while
// calls are being published: a call either completes with its own reply or
// (its task unconfirmed, or published while the link was down) fails at
// once with ErrBrokerUnavailable; none waits past its deadline.
func TestBrokerClosesConnectionsWhilePublishing(t *testing.T) {
	t.Parallel()
	vh := newVHost(t)
	startServer(t, ServerConfig{URL: vh.url, Concurrency: 64}, echoHandler)
	c := startClient(t, ClientConfig{URL: vh.url})

	const timeout = 10 * time.Second
	stop := make(chan struct{})
	var ok, unavailable atomic.Int64
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w * 1_000_000; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				deadline, _ := ctx.Deadline()
				rep, err := c.Call(ctx, echoTask(map[string]any{"i": i, "sleep_ms": 20}))
				cancel()
				switch {
				case err == nil:
					if err := checkEcho(rep, i); err != nil {
						t.Error(err)
					}
					ok.Add(1)
				case errors.Is(err, ErrBrokerUnavailable):
					unavailable.Add(1)
					time.Sleep(5 * time.Millisecond)
				default:
					t.Errorf("call %d: %v", i, err)
				}
				if over := time.Since(deadline); over > 100*time.Millisecond {
					t.Errorf("call %d: ended %s after its deadline", i, over)
				}
			}
		}()
	}
	waitFor(t, 10*time.Second, "calls flowing", func() bool { return ok.Load() > 100 })
	vh.closeAllConnections(t)
	before := ok.Load()
	waitFor(t, 15*time.Second, "calls succeed after the reconnect", func() bool { return c.Connected() && ok.Load() > before+100 })
	close(stop)
	wg.Wait()
	t.Logf("ok=%d unavailable=%d stats=%+v", ok.Load(), unavailable.Load(), c.Stats())
}

// TestBrokerClosesConnectionsDirectMode: with direct reply-to every call in
// flight ends at once with ErrBrokerUnavailable.
func TestBrokerClosesConnectionsDirectMode(t *testing.T) {
	t.Parallel()
	vh := newVHost(t)
	srv := startServer(t, ServerConfig{URL: vh.url, Concurrency: 256}, echoHandler)
	c := startClient(t, ClientConfig{URL: vh.url, ReplyMode: ReplyDirect})

	const n = 200
	type res struct {
		err error
		at  time.Time
	}
	results := make(chan res, n)
	for i := range n {
		go func() {
			_, err := callT(c, 30*time.Second, echoTask(map[string]any{"i": i, "sleep_ms": 20000}))
			results <- res{err, time.Now()}
		}()
	}
	waitFor(t, 10*time.Second, "200 tasks confirmed", func() bool { return c.confirmed.Load() == n })
	waitFor(t, 10*time.Second, "tasks running", func() bool { return srv.Stats().InFlight > 0 })
	closed := time.Now()
	vh.closeAllConnections(t)
	returned := time.Now()
	for range n {
		r := <-results
		if !errors.Is(r.err, ErrBrokerUnavailable) {
			t.Errorf("err = %v, want ErrBrokerUnavailable", r.err)
		}
		// rabbitmqctl itself takes about a second: the calls must end
		// while it runs or right after, not when their tasks would finish.
		if r.at.After(returned.Add(500 * time.Millisecond)) {
			t.Errorf("call ended %s after the connections were closed", r.at.Sub(closed))
		}
	}
	waitFor(t, 10*time.Second, "reconnected", c.Connected)
	var err error
	for range 50 { // the worker may still be reconnecting
		if _, err = callT(c, 5*time.Second, echoTask(map[string]any{"i": 1})); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("call after reconnect: %v", err)
	}
}

func TestCancelStopsRunningTask(t *testing.T) {
	t.Parallel()
	vh := newVHost(t)
	started := make(chan string, 2)
	stopped := make(chan error, 2)
	h := FuncHandler{ScriptList: echoScripts, Func: func(ctx context.Context, t Task) (json.RawMessage, error) {
		started <- t.RequestID
		<-ctx.Done()
		stopped <- context.Cause(ctx)
		return nil, context.Cause(ctx)
	}}
	srv := startServer(t, ServerConfig{URL: vh.url, Concurrency: 1}, h)
	var cancelledEvents atomic.Int32
	c := startClient(t, ClientConfig{URL: vh.url, OnEvent: func(e Event) {
		if e.Type == EventCancelled {
			cancelledEvents.Add(1)
		}
	}})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctx, cancelCall := context.WithCancel(ctx)
	res := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, echoTask(map[string]any{"i": 1}))
		res <- err
	}()
	<-started
	cancelCall()
	at := time.Now()
	if err := <-res; !errors.Is(err, ErrCanceled) {
		t.Fatalf("err = %v, want ErrCanceled", err)
	}
	select {
	case cause := <-stopped:
		if d := time.Since(at); d > time.Second {
			t.Errorf("task stopped %s after the cancel, want < 1s", d)
		}
		if !errors.Is(cause, errTaskCancelled) {
			t.Errorf("task context cause = %v", cause)
		}
	case <-time.After(time.Second):
		t.Fatal("task still running 1s after the cancel")
	}
	waitFor(t, 5*time.Second, "CANCELLED reply counted as late", func() bool { return c.Stats().LateReplies == 1 })
	waitFor(t, 5*time.Second, "task.cancelled event", func() bool { return cancelledEvents.Load() == 1 })
	if st := c.Stats(); st.Cancels != 1 {
		t.Errorf("client stats = %+v", st)
	}

	// A task cancelled while still queued is skipped when it arrives.
	blockCtx, unblock := context.WithTimeout(context.Background(), 20*time.Second)
	defer unblock()
	go func() { _, _ = c.Call(blockCtx, echoTask(map[string]any{"i": 2})) }() // occupies the only slot
	<-started
	qctx, qcancel := context.WithTimeout(context.Background(), 20*time.Second)
	queued := echoTask(map[string]any{"i": 3})
	queued.RequestID = newRequestID()
	qres := make(chan error, 1)
	go func() {
		_, err := c.Call(qctx, queued)
		qres <- err
	}()
	waitFor(t, 5*time.Second, "task queued", func() bool {
		m, _, err := c.QueueDepth(context.Background(), DefaultPool)
		return err == nil && m == 1
	})
	qcancel()
	if err := <-qres; !errors.Is(err, ErrCanceled) {
		t.Fatalf("queued call: err = %v", err)
	}
	time.Sleep(100 * time.Millisecond) // let the cancel reach the worker
	unblock()                          // frees the slot: the queued task arrives next
	waitFor(t, 5*time.Second, "queued cancelled task skipped", func() bool { return srv.Stats().Cancelled == 3 })
	select {
	case id := <-started:
		t.Fatalf("task %s ran", id)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestPoisonTaskIsDeadLettered(t *testing.T) {
	t.Parallel()
	vh := newVHost(t)
	var runs atomic.Int32
	var srv *Server
	h := FuncHandler{ScriptList: echoScripts, Func: func(ctx context.Context, t Task) (json.RawMessage, error) {
		runs.Add(1)
		// The task kills its worker: the connection drops mid-task.
		_ = srv.cur.Load().s.conn.Close()
		<-ctx.Done()
		return nil, context.Cause(ctx)
	}}
	const limit = 2
	s, err := NewServer(ServerConfig{
		URL: vh.url, QueueType: QueueQuorum, DeliveryLimit: limit, Logger: testLogger(t),
		ReconnectMin: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond,
	}, h)
	if err != nil {
		t.Fatal(err)
	}
	srv = s
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	defer func() { stop(); <-done }()
	<-s.Ready()
	c := startClient(t, ClientConfig{URL: vh.url})

	_, err = callT(c, 20*time.Second, echoTask(map[string]any{"poison": true}))
	var te *TaskError
	if !errors.As(err, &te) || te.Code != CodeWorkerError {
		t.Fatalf("err = %v, want a WORKER_ERROR TaskError", err)
	}
	t.Logf("reply error: %v", err)
	if n := runs.Load(); n != limit+1 {
		t.Errorf("task ran %d times, want %d (delivery limit %d)", n, limit+1, limit)
	}
	waitFor(t, 5*time.Second, "reconnected", c.Connected)
	msgs, _, err := queueDepth(t, vh, PoisonQueueName(DefaultPool))
	if err != nil || msgs != 1 {
		t.Errorf("poison queue holds %d messages (%v), want 1", msgs, err)
	}
	if st := s.Stats(); st.DeadLettered != 1 {
		t.Errorf("server stats = %+v", st)
	}
}

// queueDepth reads a queue's message count with a passive declare.
func queueDepth(tb testing.TB, vh testVHost, queue string) (messages, consumers int, err error) {
	conn, err := amqp.Dial(vh.url)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return 0, 0, err
	}
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	return q.Messages, q.Consumers, err
}

func TestNoWorkers(t *testing.T) {
	t.Parallel()
	vh := newVHost(t)
	const hb = 100 * time.Millisecond
	sctx, stopServer := context.WithCancel(context.Background())
	s, err := NewServer(ServerConfig{URL: vh.url, HeartbeatInterval: hb, Logger: testLogger(t), GracePeriod: time.Second}, echoHandler)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(sctx) }()
	defer func() {
		stopServer()
		select {
		case <-done:
		default:
		}
	}()
	<-s.Ready()
	c := startClient(t, ClientConfig{URL: vh.url, HeartbeatInterval: hb})

	if _, err := callT(c, 5*time.Second, echoTask(map[string]any{"i": 1})); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "worker heard", func() bool { return len(c.Workers()) == 1 && len(c.Scripts()) == 1 })
	if w := c.Workers()[0]; !w.Live || w.WorkerID != s.WorkerID() || w.Capacity != DefaultConcurrency {
		t.Errorf("worker = %+v", w)
	}
	stopServer()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	close(done)
	// The queue stays bound: without heartbeats the call would wait for
	// its timeout. Three intervals after the last heartbeat it fails fast.
	waitFor(t, 2*time.Second, "worker not live", func() bool { return len(c.Scripts()) == 0 })
	// A heartbeat the worker sent just before it stopped may still be on its
	// way (a loaded broker): it makes the worker live again for three
	// intervals. Wait until calls fail fast, then time one.
	waitFor(t, 5*time.Second, "calls failing with ErrNoWorkers", func() bool {
		_, err := callT(c, 300*time.Millisecond, echoTask(map[string]any{"probe": true}))
		return errors.Is(err, ErrNoWorkers)
	})
	start := time.Now()
	_, err = callT(c, 5*time.Second, echoTask(map[string]any{"i": 2}))
	if !errors.Is(err, ErrNoWorkers) {
		t.Fatalf("err = %v, want ErrNoWorkers", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("took %s", d)
	}
	if w := c.Workers(); len(w) != 1 || w[0].Live {
		t.Errorf("workers = %+v", w)
	}

	// A client that just started has not heard of any worker: it does not
	// answer NO_WORKERS (the call times out in the queue instead).
	c2 := startClient(t, ClientConfig{URL: vh.url, HeartbeatInterval: hb})
	if _, err := callT(c2, 200*time.Millisecond, echoTask(map[string]any{"i": 3})); !errors.Is(err, ErrTimeout) {
		t.Fatalf("fresh client: err = %v, want ErrTimeout", err)
	}
}

func TestGracefulStop(t *testing.T) {
	t.Parallel()
	vh := newVHost(t)
	s, err := NewServer(ServerConfig{URL: vh.url, WorkerID: "a", Logger: testLogger(t), GracePeriod: 700 * time.Millisecond}, echoHandler)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	<-s.Ready()
	c := startClient(t, ClientConfig{URL: vh.url})

	type res struct {
		rep Reply
		err error
	}
	quick, slow := make(chan res, 1), make(chan res, 1)
	go func() {
		rep, err := callT(c, 10*time.Second, echoTask(map[string]any{"i": 1, "sleep_ms": 300}))
		quick <- res{rep, err}
	}()
	go func() {
		rep, err := callT(c, 20*time.Second, echoTask(map[string]any{"i": 2, "sleep_ms": 5000}))
		slow <- res{rep, err}
	}()
	waitFor(t, 5*time.Second, "both running", func() bool { return s.Stats().InFlight == 2 })
	stop()
	// The quick task finishes within the grace period and is answered.
	if r := <-quick; r.err != nil || r.rep.WorkerID != "a" {
		t.Fatalf("quick task: %+v %v", r.rep, r.err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	// The slow one was requeued: a new worker answers it.
	startServer(t, ServerConfig{URL: vh.url, WorkerID: "b"}, echoHandler)
	r := <-slow
	if r.err != nil || r.rep.WorkerID != "b" {
		t.Fatalf("slow task: %+v %v", r.rep, r.err)
	}
	if err := checkEcho(r.rep, 2); err != nil {
		t.Fatal(err)
	}
}

func TestRefreshAndEvents(t *testing.T) {
	t.Parallel()
	vh := newVHost(t)
	var mu sync.Mutex
	scripts := []ScriptInfo{{Name: "echo", Versions: []string{"1.0.0"}}}
	h := &dynHandler{scripts: func() []ScriptInfo { mu.Lock(); defer mu.Unlock(); return scripts }}
	s := startServer(t, ServerConfig{URL: vh.url, HeartbeatInterval: 100 * time.Millisecond}, h)
	events := make(chan Event, 100)
	c := startClient(t, ClientConfig{URL: vh.url, AcceptedEvents: true, HeartbeatInterval: 100 * time.Millisecond, OnEvent: func(e Event) {
		select {
		case events <- e:
		default:
		}
	}})
	task := echoTask(map[string]any{"i": 1})
	task.RequestID = newRequestID()
	if _, err := callT(c, 5*time.Second, task); err != nil {
		t.Fatal(err)
	}
	want := []string{EventAccepted, EventStarted, EventCompleted}
	seen := map[string]bool{}
	timeout := time.After(5 * time.Second)
	for len(seen) < len(want) {
		select {
		case e := <-events:
			if e.RequestID != task.RequestID {
				continue
			}
			seen[e.Type] = true
			if e.Type == EventStarted && (e.WorkerID == nil || *e.WorkerID != s.WorkerID() || e.ClientID != "test" || e.ScriptName != "echo") {
				t.Errorf("started event = %+v", e)
			}
			if e.Type == EventAccepted && e.WorkerID != nil {
				t.Errorf("accepted event has a worker id: %+v", e)
			}
		case <-timeout:
			t.Fatalf("events seen: %v, want %v", seen, want)
		}
	}

	if _, err := callT(c, 5*time.Second, Task{ScriptName: "upper", ClientID: "test"}); !errors.Is(err, ErrUnknownScript) {
		t.Fatalf("before refresh: err = %v", err)
	}
	mu.Lock()
	scripts = []ScriptInfo{{Name: "upper", Versions: []string{"2.0.0"}}}
	mu.Unlock()
	s.Refresh()
	waitFor(t, 5*time.Second, "heartbeat advertises upper", func() bool {
		sc := c.Scripts()
		return len(sc) == 1 && sc[0].Name == "upper"
	})
	if _, err := callT(c, 5*time.Second, Task{ScriptName: "upper", ClientID: "test"}); err != nil {
		t.Fatalf("after refresh: %v", err)
	}
	if _, err := callT(c, 5*time.Second, echoTask(nil)); !errors.Is(err, ErrUnknownScript) {
		t.Fatalf("echo after refresh: err = %v, want ErrUnknownScript", err)
	}
}

type dynHandler struct{ scripts func() []ScriptInfo }

func (h *dynHandler) Scripts() []ScriptInfo { return h.scripts() }
func (h *dynHandler) Run(ctx context.Context, t Task) (json.RawMessage, error) {
	return json.RawMessage(`{"ok":true}`), nil
}

func TestClientDownAndClose(t *testing.T) {
	t.Parallel()
	// Nothing listens on port 1: the link never comes up.
	c, err := NewClient(ClientConfig{URL: "amqp://guest:guest@127.0.0.1:1/", Logger: testLogger(t), ReconnectMin: 10 * time.Millisecond, ReconnectMax: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c.Start()
	start := time.Now()
	if _, err := callT(c, 5*time.Second, echoTask(nil)); !errors.Is(err, ErrBrokerUnavailable) {
		t.Fatalf("err = %v, want ErrBrokerUnavailable", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("took %s", d)
	}
	if _, _, err := c.QueueDepth(context.Background(), DefaultPool); !errors.Is(err, ErrBrokerUnavailable) {
		t.Errorf("QueueDepth: err = %v", err)
	}
	time.Sleep(50 * time.Millisecond)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := callT(c, 5*time.Second, echoTask(nil)); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: err = %v, want ErrClosed", err)
	}
}

func TestCloseFailsPendingCalls(t *testing.T) {
	t.Parallel()
	vh := newVHost(t)
	startServer(t, ServerConfig{URL: vh.url}, echoHandler)
	c := startClient(t, ClientConfig{URL: vh.url})
	if m, n, err := c.QueueDepth(context.Background(), DefaultPool); err != nil || m != 0 || n != 1 {
		t.Errorf("QueueDepth = %d, %d, %v", m, n, err)
	}
	if _, _, err := c.QueueDepth(context.Background(), "nope"); err == nil {
		t.Errorf("QueueDepth of a missing pool: no error")
	}
	res := make(chan error, 10)
	for i := range 10 {
		go func() {
			_, err := callT(c, 10*time.Second, echoTask(map[string]any{"i": i, "sleep_ms": 5000}))
			res <- err
		}()
	}
	waitFor(t, 5*time.Second, "calls confirmed", func() bool { return c.confirmed.Load() == 10 })
	_ = c.Close()
	for range 10 {
		if err := <-res; !errors.Is(err, ErrClosed) {
			t.Errorf("err = %v, want ErrClosed", err)
		}
	}
}

func TestShutdownRequeuesWhenItsContextEnds(t *testing.T) {
	t.Parallel()
	vh := newVHost(t)
	s, err := NewServer(ServerConfig{URL: vh.url, WorkerID: "a", Logger: testLogger(t)}, echoHandler) // grace 30s
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown before Serve: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background()) }()
	<-s.Ready()
	c := startClient(t, ClientConfig{URL: vh.url})
	res := make(chan error, 1)
	var rep Reply
	go func() {
		var err error
		rep, err = callT(c, 20*time.Second, echoTask(map[string]any{"i": 5, "sleep_ms": 2000}))
		res <- err
	}()
	waitFor(t, 5*time.Second, "task running", func() bool { return s.Stats().InFlight == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: err = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Shutdown took %s", d)
	}
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	startServer(t, ServerConfig{URL: vh.url, WorkerID: "b"}, echoHandler)
	if err := <-res; err != nil {
		t.Fatalf("call: %v", err)
	}
	if rep.WorkerID != "b" {
		t.Errorf("answered by %q, want b", rep.WorkerID)
	}
}

// TestQueuesDeletedUnderneath deletes the reply queue and the task queue
// while client and server use them: both notice their consumer was
// cancelled, reconnect, declare again, and calls work again.
func TestQueuesDeletedUnderneath(t *testing.T) {
	t.Parallel()
	vh := newVHost(t)
	startServer(t, ServerConfig{URL: vh.url}, echoHandler)
	c := startClient(t, ClientConfig{URL: vh.url, InstanceID: "gw1"})
	if _, err := callT(c, 5*time.Second, echoTask(map[string]any{"i": 1})); err != nil {
		t.Fatal(err)
	}
	conn, err := amqp.Dial(vh.url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{ReplyQueueName("gw1"), TaskQueueName(DefaultPool)} {
		if _, err := ch.QueueDelete(q, false, false, false); err != nil {
			t.Fatalf("deleting %s: %v", q, err)
		}
	}
	waitFor(t, 5*time.Second, "client reconnected", func() bool { return c.Stats().Reconnects >= 1 && c.Connected() })
	var lastErr error
	waitFor(t, 10*time.Second, "calls work again", func() bool {
		_, lastErr = callT(c, 2*time.Second, echoTask(map[string]any{"i": 2}))
		return lastErr == nil
	})
}

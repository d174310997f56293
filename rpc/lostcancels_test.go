package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// A caller that goes away while the client's link is down cannot have its
// task.cancel published then; its task, confirmed before the outage and
// running on a worker, is redelivered when the worker reconnects. The client
// keeps the cancel and publishes it when its link is back (worker back
// first) or when it hears the reconnected worker's heartbeat (client back
// first), so the redelivered task is stopped instead of running again for
// no one (found by the fault suite, e2e/chaos_test.go).
func TestCancelWhileLinkDownStopsRedeliveredTask(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name                   string
		clientDown, serverDown time.Duration
	}{
		{"worker reconnects first", time.Second, 20 * time.Millisecond},
		{"client reconnects first", time.Second, 3 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			vh := newVHost(t)
			h, started, stopped := blockingHandler()
			srv := startServer(t, ServerConfig{
				URL: vh.url, Concurrency: 1, HeartbeatInterval: 200 * time.Millisecond,
				ReconnectMin: tc.serverDown, ReconnectMax: tc.serverDown,
			}, h)
			c := startClient(t, ClientConfig{URL: vh.url, ReconnectMin: tc.clientDown, ReconnectMax: tc.clientDown})

			ctx, cancelCall := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancelCall()
			res := make(chan error, 1)
			go func() {
				_, err := c.Call(ctx, echoTask(map[string]any{"sleep": "forever"}))
				res <- err
			}()
			first := <-started

			vh.closeAllConnections(t)
			waitFor(t, 10*time.Second, "client link down", func() bool { return !c.Connected() })
			cancelCall() // the caller leaves while the link is down
			if err := <-res; !errors.Is(err, ErrCanceled) {
				t.Fatalf("Call: %v, want ErrCanceled", err)
			}
			if r := <-stopped; r.id != first.id || !errors.Is(r.cause, errSessionLost) {
				t.Fatalf("first run ended with %v, want the lost session", r.cause)
			}

			// The redelivered task either starts and is stopped by the
			// cancel, or, when the cancel reached the worker first, is
			// skipped without starting (the better outcome).
			var again run
			skipped := func() bool { st := srv.Stats(); return st.Redelivered >= 1 && st.Cancelled >= 1 }
			deadline := time.After(15 * time.Second)
		wait:
			for {
				select {
				case again = <-started:
					break wait
				case <-deadline:
					t.Fatal("the task was neither redelivered nor skipped")
				case <-time.After(20 * time.Millisecond):
					if skipped() {
						select {
						case again = <-started:
							break wait
						default:
						}
						t.Logf("the redelivered task was skipped: its cancel came first")
						return
					}
				}
			}
			select {
			case r := <-stopped:
				if !errors.Is(r.cause, errTaskCancelled) {
					t.Fatalf("redelivered run ended with %v, want errTaskCancelled", r.cause)
				}
				t.Logf("redelivered run stopped %v after it started", r.at.Sub(again.at).Round(time.Millisecond))
			case <-time.After(10 * time.Second):
				t.Fatal("the redelivered task still runs 10 s after it started: its cancel was lost")
			}
		})
	}
}

// A caller that goes away while the only worker is reconnecting: the client
// publishes the task.cancel, but the worker's control queue does not exist
// then, so the fanout drops it; the worker, once back, takes the task from
// the queue. The client publishes recent cancels again on each heartbeat, so
// the task is stopped right after it starts (found by the fault suite).
func TestCancelWhileWorkerReconnectsStopsQueuedTask(t *testing.T) {
	t.Parallel()
	vh := newVHost(t)
	h, started, stopped := blockingHandler()
	startServer(t, ServerConfig{
		URL: vh.url, Concurrency: 1, HeartbeatInterval: 200 * time.Millisecond,
		ReconnectMin: 5 * time.Second, ReconnectMax: 5 * time.Second, // away 2.5-5 s
	}, h)
	c := startClient(t, ClientConfig{URL: vh.url}) // back in 10-200 ms
	waitFor(t, 10*time.Second, "worker heard", func() bool { return len(c.Workers()) == 1 })

	before := c.Stats().Reconnects
	vh.closeAllConnections(t)
	// the client is back within 10-200 ms: watch its count of lost links,
	// not its state, which may be up again between two looks
	waitFor(t, 10*time.Second, "client link lost", func() bool { return c.Stats().Reconnects > before })
	waitFor(t, 2*time.Second, "client link back (the worker's is not)", c.Connected)
	ctx, cancelCall := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelCall()
	res := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, echoTask(map[string]any{"queued": true}))
		res <- err
	}()
	waitFor(t, 5*time.Second, "task queued", func() bool {
		m, _, err := c.QueueDepth(context.Background(), DefaultPool)
		return err == nil && m == 1
	})
	cancelCall() // published, but no worker listens now
	if err := <-res; !errors.Is(err, ErrCanceled) {
		t.Fatalf("Call: %v, want ErrCanceled", err)
	}
	var r run
	select {
	case r = <-started:
	case <-time.After(15 * time.Second):
		t.Fatal("the worker never took the task")
	}
	select {
	case s := <-stopped:
		if !errors.Is(s.cause, errTaskCancelled) {
			t.Fatalf("task ended with %v, want errTaskCancelled", s.cause)
		}
		t.Logf("task stopped %v after it started", s.at.Sub(r.at).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("the task still runs 10 s after it started: its cancel was lost")
	}
}

// run is one run of a task by blockingHandler.
type run struct {
	id    string
	at    time.Time
	cause error
}

// blockingHandler runs every task until its context ends, reporting each
// start and each stop (with the context's cause).
func blockingHandler() (h FuncHandler, started, stopped chan run) {
	started, stopped = make(chan run, 4), make(chan run, 4)
	h = FuncHandler{ScriptList: echoScripts, Func: func(ctx context.Context, t Task) (json.RawMessage, error) {
		started <- run{id: t.RequestID, at: time.Now()}
		<-ctx.Done()
		stopped <- run{id: t.RequestID, at: time.Now(), cause: context.Cause(ctx)}
		return nil, context.Cause(ctx)
	}}
	return h, started, stopped
}

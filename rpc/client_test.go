package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	vh := newVHost(t)
	srv := startServer(t, ServerConfig{URL: vh.url, WorkerID: "w1"}, echoHandler)
	c := startClient(t, ClientConfig{URL: vh.url})

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	task := echoTask(map[string]any{"url": "https://example.com", "n": 42})
	task.RequestID = newRequestID()
	rep, err := c.Call(ctx, task)
	if err != nil {
		t.Fatalf("Call: %v", err)
	}
	if rep.Status != StatusCompleted || rep.RequestID != task.RequestID || rep.WorkerID != "w1" {
		t.Fatalf("reply = %+v", rep)
	}
	var got map[string]any
	if err := json.Unmarshal(rep.Data, &got); err != nil || got["n"] != 42.0 {
		t.Fatalf("data = %s (%v)", rep.Data, err)
	}

	// A script nobody serves comes back from the broker at once.
	start := time.Now()
	_, err = c.Call(ctx, Task{ScriptName: "nope", ClientID: "test"})
	if !errors.Is(err, ErrUnknownScript) {
		t.Fatalf("unknown script: err = %v", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("unknown script took %s, want < 100ms", d)
	}
	st := c.Stats()
	if st.Calls != 2 || st.Replies != 1 || st.Returns != 1 || st.InFlight != 0 {
		t.Errorf("stats = %+v", st)
	}
	// The server counts a task once the broker confirmed its reply, which
	// can be after the reply reached the caller.
	waitFor(t, 2*time.Second, "server counted the task", func() bool { return srv.Stats().Completed == 1 })
}

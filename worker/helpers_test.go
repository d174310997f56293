package worker

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/scrapegate/scrapegate/rpc"
)

// testScriptsDir is the repository's test scripts.
const testScriptsDir = "../testdata/scripts"

// loopback admits the httptest servers.
var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// newRuntime makes a Runtime that logs to the test.
func newRuntime(t *testing.T, cfg Config) *Runtime {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = zaptest.NewLogger(t)
	}
	rt, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = rt.Close() })
	return rt
}

// runTask runs a task with a deadline; version "" asks for the newest.
func runTask(ctx context.Context, t *testing.T, rt *Runtime, script, version string, params any, timeout time.Duration) (json.RawMessage, *rpc.TaskError) {
	t.Helper()
	raw, err := json.Marshal(params)
	if err != nil {
		t.Fatalf("marshalling parameters: %v", err)
	}
	task := rpc.Task{RequestID: "req-" + strings.ReplaceAll(t.Name(), "/", "-"), ScriptName: script, Parameters: raw, Timeout: int(timeout / time.Second), CreatedAt: time.Now()}
	if version != "" {
		task.ScriptVersion = &version
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	data, err := rt.Run(ctx, task)
	if err == nil {
		return data, nil
	}
	var te *rpc.TaskError
	if !errors.As(err, &te) {
		t.Fatalf("Run returned %T %v, want *rpc.TaskError", err, err)
	}
	return nil, te
}

// mustOK returns a function that fails the test unless the task completed,
// and decodes its data: mustOK(t)(runTask(...)).
func mustOK(t *testing.T) func(json.RawMessage, *rpc.TaskError) map[string]any {
	return func(data json.RawMessage, te *rpc.TaskError) map[string]any {
		t.Helper()
		if te != nil {
			t.Fatalf("task failed: %v", te)
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("data %s: %v", data, err)
		}
		return m
	}
}

// mustFail fails the test unless the task failed with code and a message
// holding every one of parts.
func mustFail(t *testing.T, te *rpc.TaskError, code string, parts ...string) {
	t.Helper()
	if te == nil {
		t.Fatalf("task completed, want %s", code)
	}
	if te.Code != code {
		t.Fatalf("code %s (%s), want %s", te.Code, te.Message, code)
	}
	t.Logf("failed as expected: %v", te)
	for _, p := range parts {
		if !strings.Contains(te.Message, p) {
			t.Errorf("message %q lacks %q", te.Message, p)
		}
	}
}

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/scrapegate/scrapegate/rpc"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// baseAMQPURL is the test broker (its default vhost); tests make their own vhosts.
func baseAMQPURL() string {
	if u := os.Getenv("E2E_AMQP_URL"); u != "" {
		return strings.TrimSuffix(u, "/")
	}
	return "amqp://guest:guest@127.0.0.1:5672"
}

// newVHost makes a RabbitMQ vhost for the test, deleted at cleanup, and
// returns its AMQP URL.
func newVHost(t testing.TB) string {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	vhost := "worker-test-" + hex.EncodeToString(b)
	rabbitmqctl(t, "add_vhost", vhost)
	t.Cleanup(func() {
		if out, err := exec.Command("rabbitmqctl", "-q", "delete_vhost", vhost).CombinedOutput(); err != nil {
			t.Logf("deleting vhost %s: %v: %s", vhost, err, out)
		}
	})
	rabbitmqctl(t, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
	return baseAMQPURL() + "/" + vhost
}

func rabbitmqctl(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("rabbitmqctl", append([]string{"-q"}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("rabbitmqctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testWorker is run() in this process.
type testWorker struct {
	id     string
	cancel context.CancelFunc
	done   chan error
	logs   *syncBuffer
}

// startWorker runs the command with args on amqpURL and waits for "worker ready".
func startWorker(t testing.TB, amqpURL, id string, args ...string) *testWorker {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &testWorker{id: id, cancel: cancel, done: make(chan error, 1), logs: &syncBuffer{}}
	getenv := func(k string) string {
		if k == "PATH" {
			return os.Getenv("PATH")
		}
		return ""
	}
	all := append([]string{"-amqp-url", amqpURL, "-worker-id", id, "-heartbeat-interval", "1s"}, args...)
	go func() { w.done <- run(ctx, all, getenv, w.logs) }()
	t.Cleanup(func() { w.stop(t) })
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(w.logs.String(), `"msg":"worker ready"`) {
		select {
		case err := <-w.done:
			w.done <- err
			t.Fatalf("worker %s exited at start: %v\n%s", id, err, w.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker %s not ready within 30s\n%s", id, w.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return w
}

// stop ends the worker gracefully and returns run's error.
func (w *testWorker) stop(t testing.TB) error {
	t.Helper()
	w.cancel()
	select {
	case err := <-w.done:
		w.done <- err
		return err
	case <-time.After(60 * time.Second):
		t.Fatalf("worker %s did not stop within 60s\n%s", w.id, w.logs.String())
		return nil
	}
}

// newClient is a gateway-side client on amqpURL.
func newClient(t testing.TB, amqpURL string) *rpc.Client {
	t.Helper()
	c, err := rpc.NewClient(rpc.ClientConfig{URL: amqpURL, HeartbeatInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c.Start()
	t.Cleanup(func() { _ = c.Close() })
	deadline := time.Now().Add(30 * time.Second)
	for !c.Connected() {
		if time.Now().After(deadline) {
			t.Fatal("client not connected within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return c
}

// callEcho runs echo with sleep_ms through the broker.
func callEcho(ctx context.Context, c *rpc.Client, id string, sleepMS int, timeout time.Duration) (rpc.Reply, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	params, _ := json.Marshal(map[string]any{"sleep_ms": sleepMS, "id": id})
	return c.Call(ctx, rpc.Task{RequestID: id, ScriptName: "echo", Parameters: params, CreatedAt: time.Now()})
}

func TestOptions(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	o, err := parseOptions(nil, env("PATH", "/bin"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.amqpURL != "amqp://guest:guest@127.0.0.1:5672/" || o.pool != "default" || o.concurrency != 16 || o.heartbeatInterval != 5*time.Second ||
		o.gracePeriod != 30*time.Second || o.queueType != "classic" || o.scriptsDir != "" || len(o.allowNetworks) != 0 {
		t.Fatalf("defaults: %+v", o)
	}
	o, err = parseOptions([]string{"-concurrency", "3", "-allow-networks", "127.0.0.0/8, 10.1.2.3"},
		env("WORKER_CONCURRENCY", "7", "WORKER_POOL", "fast", "WORKER_ALLOW_NETWORKS", "192.168.0.0/16", "WORKER_GRACE_PERIOD", "2s",
			"WORKER_SCRIPT_ENV", "LANG,SECRET_MISSING", "LANG", "C.UTF-8", "PATH", "/bin"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.concurrency != 3 || o.pool != "fast" || o.gracePeriod != 2*time.Second ||
		fmt.Sprint(o.allowNetworks) != "[127.0.0.0/8 10.1.2.3/32]" || fmt.Sprint(o.scriptEnv) != "[PATH=/bin LANG=C.UTF-8]" {
		t.Fatalf("flags over env: %+v", o)
	}
	for _, tc := range []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"-concurrency", "0"}, nil, "-concurrency"},
		{nil, []string{"WORKER_CONCURRENCY", "many"}, "WORKER_CONCURRENCY"},
		{nil, []string{"WORKER_HEARTBEAT_INTERVAL", "5"}, "WORKER_HEARTBEAT_INTERVAL"},
		{[]string{"-allow-networks", "10.0.0.0/33"}, nil, "-allow-networks: item 1"},
		{[]string{"-amqp-url", "http://x/"}, nil, "-amqp-url"},
		{[]string{"-log-level", "loud"}, nil, "-log-level"},
		{[]string{"-log-format", "xml"}, nil, "-log-format"},
		{[]string{"-pool", "a b"}, nil, "-pool"},
		{[]string{"extra"}, nil, "unexpected argument"},
		{[]string{"-queue-type", "stream"}, nil, "-queue-type"},
		{nil, []string{"SCRIPTS_DIR", "/no/such/dir"}, "-scripts-dir"},
		{[]string{"-nope"}, nil, "flag provided but not defined"},
	} {
		_, err := parseOptions(tc.args, env(tc.env...), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: error %v, want %q", tc.args, tc.env, err, tc.want)
		}
	}
	if _, err := parseOptions([]string{"-h"}, env(), io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
	// Bad settings fail run before it connects.
	for _, args := range [][]string{{"-queue-type", "stream"}, {"-scripts-dir", "/no/such/dir"}, {"-worker-id", "a b"}} {
		if err := run(t.Context(), args, env(), io.Discard); err == nil {
			t.Errorf("run %v succeeded", args)
		}
	}
}

// TestWorkersShareLoad: two workers of one pool both take tasks.
func TestWorkersShareLoad(t *testing.T) {
	url := newVHost(t)
	startWorker(t, url, "worker-a", "-concurrency", "2")
	startWorker(t, url, "worker-b", "-concurrency", "2")
	c := newClient(t, url)

	const n = 24
	var mu sync.Mutex
	byWorker := map[string]int{}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			rep, err := callEcho(t.Context(), c, fmt.Sprintf("share-%d", i), 100, 30*time.Second)
			if err != nil || rep.Status != rpc.StatusCompleted {
				t.Errorf("task %d: %+v %v", i, rep, err)
				return
			}
			mu.Lock()
			byWorker[rep.WorkerID]++
			mu.Unlock()
		})
	}
	wg.Wait()
	t.Logf("tasks by worker: %v", byWorker)
	if byWorker["worker-a"]+byWorker["worker-b"] != n || byWorker["worker-a"] < n/6 || byWorker["worker-b"] < n/6 {
		t.Fatalf("tasks by worker: %v", byWorker)
	}
}

// TestGracefulStopLosesNoTask: a busy worker stops; its running tasks finish
// and reply, the queued ones go to the other worker; every call completes.
func TestGracefulStopLosesNoTask(t *testing.T) {
	url := newVHost(t)
	a := startWorker(t, url, "worker-a", "-concurrency", "4", "-log-level", "debug", "-grace-period", "20s")
	c := newClient(t, url)

	const n = 16
	type result struct {
		rep rpc.Reply
		err error
	}
	results := make(chan result, n)
	for i := range n {
		go func() {
			rep, err := callEcho(t.Context(), c, fmt.Sprintf("graceful-%d", i), 500, 60*time.Second)
			results <- result{rep, err}
		}()
	}
	// Worker a is busy with 4 tasks, the other 12 wait in the queue.
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(a.logs.String(), `"msg":"running script"`) < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("worker a never got busy:\n%s", a.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	startWorker(t, url, "worker-b", "-concurrency", "4")
	stopped := make(chan error, 1)
	go func() { stopped <- a.stop(t) }()

	byWorker := map[string]int{}
	for range n {
		r := <-results
		if r.err != nil || r.rep.Status != rpc.StatusCompleted {
			t.Fatalf("a task was lost: %+v %v", r.rep, r.err)
		}
		byWorker[r.rep.WorkerID]++
	}
	if err := <-stopped; err != nil {
		t.Fatalf("worker a: %v", err)
	}
	t.Logf("tasks by worker: %v", byWorker)
	if byWorker["worker-a"] < 4 || byWorker["worker-a"]+byWorker["worker-b"] != n {
		t.Fatalf("tasks by worker: %v (worker a should have finished the 4 it was running)", byWorker)
	}
	if !strings.Contains(a.logs.String(), `"msg":"worker stopped"`) {
		t.Fatalf("no stop log:\n%s", a.logs.String())
	}
}

// TestScriptsEndToEnd: an external script runs through the broker with the
// contract's codes, and a script added to the directory is served without a
// restart (rescan -> Refresh binds its routing key).
func TestScriptsEndToEnd(t *testing.T) {
	url := newVHost(t)
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("../../testdata/scripts")); err != nil {
		t.Fatal(err)
	}
	startWorker(t, url, "worker-s", "-scripts-dir", dir)
	c := newClient(t, url)
	call := func(script, version string, params string) (rpc.Reply, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		task := rpc.Task{ScriptName: script, Parameters: json.RawMessage(params), CreatedAt: time.Now()}
		if version != "" {
			task.ScriptVersion = &version
		}
		return c.Call(ctx, task)
	}
	rep, err := call("greet", "1.0.0", `{"name": "Ada"}`)
	if err != nil || !strings.Contains(string(rep.Data), "hello, Ada") {
		t.Fatalf("greet: %+v %v", rep, err)
	}
	for _, tc := range []struct{ script, version, params, code string }{
		{"greet", "9.9.9", `{}`, rpc.CodeUnknownVersion},
		{"greet", "1.0.0", `{"name": 1}`, rpc.CodeInvalidParameters},
		{"badjson", "", `{}`, rpc.CodeScriptError},
	} {
		rep, err := call(tc.script, tc.version, tc.params)
		var te *rpc.TaskError
		if !errors.As(err, &te) || te.Code != tc.code || rep.Code() != tc.code {
			t.Errorf("%s@%s: %+v %v, want %s", tc.script, tc.version, rep, err, tc.code)
		}
	}

	if err := os.MkdirAll(dir+"/added/1.0.0", 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(dir+"/added/1.0.0/run.sh", []byte("cat >/dev/null; echo '{\"added\": true}'\n"), 0o644)
	_ = os.WriteFile(dir+"/added/1.0.0/manifest.json", []byte(`{"command": ["sh", "${SCRIPT_DIR}/run.sh"]}`), 0o644)
	deadline := time.Now().Add(20 * time.Second)
	for {
		rep, err := call("added", "", `{}`)
		if err == nil && string(rep.Data) == `{"added":true}` {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the added script is not served: %+v %v", rep, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestCancelKillsScript: the caller goes away (its context is cancelled), the
// client publishes task.cancel, and the worker kills the script with the
// child it spawned; the same at the task's deadline.
func TestCancelKillsScript(t *testing.T) {
	url := newVHost(t)
	w := startWorker(t, url, "worker-c", "-scripts-dir", "../../testdata/scripts", "-log-level", "debug")
	c := newClient(t, url)

	for _, how := range []string{"cancel", "deadline"} {
		t.Run(how, func(t *testing.T) {
			pidFile := filepath.Join(t.TempDir(), "pids")
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
			defer cancel()
			id := "kill-" + how
			done := make(chan error, 1)
			go func() {
				params, _ := json.Marshal(map[string]any{"pid_file": pidFile})
				_, err := c.Call(ctx, rpc.Task{RequestID: id, ScriptName: "sleeper", Parameters: params, CreatedAt: time.Now()})
				done <- err
			}()
			pids := waitPids(t, pidFile)
			if how == "cancel" {
				cancel()
			}
			if err := <-done; err == nil {
				t.Fatal("the call succeeded")
			}
			want := map[string]string{"cancel": `"error_code":"CANCELLED"`, "deadline": `"error_code":"SCRIPT_TIMEOUT"`}[how]
			deadline := time.Now().Add(5 * time.Second)
			for !strings.Contains(w.logs.String(), `"request_id":"`+id+`"`) || !strings.Contains(w.logs.String(), want) {
				if time.Now().After(deadline) {
					t.Fatalf("no %s in the worker's log:\n%s", want, w.logs.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			assertGone(t, pids)
		})
	}
}

// waitPids reads the sleeper's "<pid> <child pid>" file.
func waitPids(t *testing.T, path string) []int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil {
			var pids []int
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					pids = append(pids, pid)
				}
			}
			if len(pids) == 2 {
				return pids
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the script did not write its pid file")
	return nil
}

// assertGone fails unless every pid is gone or a zombie within 2s.
func assertGone(t *testing.T, pids []int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for _, pid := range pids {
		for {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if err != nil {
				break
			}
			if i := strings.LastIndexByte(string(b), ')'); i > 0 && len(b) > i+2 && (b[i+2] == 'Z' || b[i+2] == 'X') {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("process %d is still running: %s", pid, b)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// BenchmarkEcho measures echo tasks per second through the real broker (the
// rpc Client, RabbitMQ, one worker run in this process) with N callers and a
// worker concurrency of N.
//
//	go test -run '^$' -bench BenchmarkEcho -benchtime 3s ./cmd/scrapegate-worker/
func BenchmarkEcho(b *testing.B) {
	for _, n := range []int{1, 16, 64} {
		url := newVHost(b)
		w := startWorker(b, url, "bench", "-concurrency", strconv.Itoa(n))
		c := newClient(b, url)
		params := json.RawMessage(`{"a": 1}`)
		b.Run(fmt.Sprintf("concurrency=%d", n), func(b *testing.B) {
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for range n {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
						rep, err := c.Call(ctx, rpc.Task{ScriptName: "echo", Parameters: params})
						cancel()
						if err != nil || rep.Status != rpc.StatusCompleted {
							b.Errorf("call: %+v %v", rep, err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
		})
		_ = c.Close()
		_ = w.stop(b)
	}
}

package e2e

// End-to-end tests of the worker binary: its signals. (The runtime and the
// worker's pool behaviour are tested in ./worker and ./cmd/scrapegate-worker.)

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scrapegate/scrapegate/rpc"
)

// workerClient is an rpc client on amqpURL, connected.
func workerClient(t *testing.T, amqpURL string) *rpc.Client {
	t.Helper()
	c, err := rpc.NewClient(rpc.ClientConfig{URL: amqpURL, HeartbeatInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c.Start()
	t.Cleanup(func() { _ = c.Close() })
	for deadline := time.Now().Add(30 * time.Second); !c.Connected(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("client not connected within 30s")
		}
	}
	return c
}

// TestWorkerSignals: SIGHUP rescans the scripts directory; SIGTERM while
// busy stops the worker gracefully: the tasks it runs finish and reply.
func TestWorkerSignals(t *testing.T) {
	url := NewVHost(t)
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(repoRoot(), "testdata", "scripts"))); err != nil {
		t.Fatal(err)
	}
	w := StartWorker(t, url, "-worker-id", "e2e-signals", "-scripts-dir", dir, "-concurrency", "4", "-grace-period", "20s", "-log-level", "debug")
	c := workerClient(t, url)
	call := func(ctx context.Context, script, params string) (rpc.Reply, error) {
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		return c.Call(ctx, rpc.Task{ScriptName: script, Parameters: json.RawMessage(params), CreatedAt: time.Now()})
	}

	// SIGHUP: a new script is served.
	vdir := filepath.Join(dir, "hup", "1.0.0")
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(vdir, "run.sh"), []byte("cat >/dev/null; echo '{\"hup\": 1}'\n"), 0o644)
	_ = os.WriteFile(filepath.Join(vdir, "manifest.json"), []byte(`{"command": ["sh", "${SCRIPT_DIR}/run.sh"]}`), 0o644)
	w.Signal(syscall.SIGHUP)
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(w.Logs(), "rescanned the scripts directory on SIGHUP"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no rescan on SIGHUP:\n%s", tail(w.Logs(), 40))
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		rep, err := call(t.Context(), "hup", `{}`)
		if err == nil && string(rep.Data) == `{"hup":1}` {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new script is not served: %+v %v", rep, err)
		}
	}

	// SIGTERM while four tasks run.
	results := make(chan error, 4)
	for i := range 4 {
		go func() {
			rep, err := call(t.Context(), "echo", fmt.Sprintf(`{"sleep_ms": 1000, "i": %d}`, i))
			if err == nil && (rep.Status != rpc.StatusCompleted || rep.WorkerID != "e2e-signals") {
				err = fmt.Errorf("reply %+v", rep)
			}
			results <- err
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); runningEchoes(w.Logs()) < 4; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the worker never got busy:\n%s", tail(w.Logs(), 40))
		}
	}
	w.Signal(syscall.SIGTERM)
	for range 4 {
		if err := <-results; err != nil {
			t.Errorf("a task running at SIGTERM: %v", err)
		}
	}
	if !w.Wait(20 * time.Second) {
		t.Fatal("the worker did not exit after SIGTERM")
	}
	if !strings.Contains(w.Logs(), `"msg":"worker stopped"`) {
		t.Fatalf("no graceful stop in the log:\n%s", tail(w.Logs(), 40))
	}
}

// runningEchoes counts the worker's "running script" log lines of echo tasks.
func runningEchoes(logs string) int {
	n := 0
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, `"msg":"running script"`) && strings.Contains(line, `"script":"echo"`) {
			n++
		}
	}
	return n
}

package rpc

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

func TestMain(m *testing.M) {
	if os.Getenv(envRawWorker) != "" || os.Getenv(envServerWorker) != "" {
		os.Exit(runWorkerProcess()) // a benchmark's worker process
	}
	code := m.Run()
	deleteVHosts()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// brokerURL is the broker's root URL (AMQP_URL, or the local broker).
func brokerURL() string {
	if u := os.Getenv("AMQP_URL"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5672/"
}

// rabbitmqctl runs rabbitmqctl and fails the test on error.
func rabbitmqctl(tb testing.TB, args ...string) {
	tb.Helper()
	out, err := exec.Command("rabbitmqctl", append([]string{"-q"}, args...)...).CombinedOutput()
	if err != nil {
		tb.Fatalf("rabbitmqctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// testVHost is a RabbitMQ vhost of its own for one test.
type testVHost struct {
	name string
	url  string
}

// vhostBatch is how many vhosts are created at once. Each rabbitmqctl run
// costs about a second of CPU, so vhosts are made in batches by one
// "rabbitmqctl eval" (with a fallback to add_vhost + set_permissions), and
// deleted together when the package's tests end.
const vhostBatch = 20

var vhosts struct {
	sync.Mutex
	free, all []string
}

// newVHost returns a fresh vhost of the test's own, with all permissions for
// guest.
func newVHost(tb testing.TB) testVHost {
	tb.Helper()
	vhosts.Lock()
	if len(vhosts.free) == 0 {
		prefix := "rpc-test-" + randomID(3) + "-"
		names := make([]string, vhostBatch)
		for i := range names {
			names[i] = prefix + strconv.Itoa(i)
		}
		vhosts.all = append(vhosts.all, names...) // deleted even if creation fails halfway
		if err := createVHosts(names); err != nil {
			vhosts.Unlock()
			tb.Fatal(err)
		}
		vhosts.free = names
	}
	name := vhosts.free[0]
	vhosts.free = vhosts.free[1:]
	vhosts.Unlock()
	tb.Logf("vhost %s", name)
	u, err := url.Parse(brokerURL())
	if err != nil {
		tb.Fatalf("AMQP_URL: %v", err)
	}
	u.Path = "/" + name
	u.RawPath = "/" + url.PathEscape(name)
	return testVHost{name: name, url: u.String()}
}

func erlangBinaries(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = "<<\"" + n + "\">>"
	}
	return "[" + strings.Join(q, ",") + "]"
}

func createVHosts(names []string) error {
	expr := `[begin ok = rabbit_vhost:add(V, <<"rpc-test">>), ok = rabbit_auth_backend_internal:set_permissions(<<"guest">>, V, <<".*">>, <<".*">>, <<".*">>, <<"rpc-test">>) end || V <- ` + erlangBinaries(names) + `], ok.`
	if exec.Command("rabbitmqctl", "-q", "eval", expr).Run() == nil {
		return nil
	}
	for _, n := range names { // another broker version: the slow, stable way
		for _, args := range [][]string{{"add_vhost", n}, {"set_permissions", "-p", n, "guest", ".*", ".*", ".*"}} {
			if out, err := exec.Command("rabbitmqctl", append([]string{"-q"}, args...)...).CombinedOutput(); err != nil {
				return fmt.Errorf("rabbitmqctl %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
	}
	return nil
}

func deleteVHosts() {
	vhosts.Lock()
	defer vhosts.Unlock()
	if len(vhosts.all) == 0 {
		return
	}
	expr := `[catch rabbit_vhost:delete(V, <<"rpc-test">>) || V <- ` + erlangBinaries(vhosts.all) + `], ok.`
	if exec.Command("rabbitmqctl", "-q", "eval", expr).Run() == nil {
		return
	}
	for _, n := range vhosts.all {
		_ = exec.Command("rabbitmqctl", "-q", "delete_vhost", n).Run()
	}
}

// closeAllConnections makes the broker close every connection of the vhost.
func (v testVHost) closeAllConnections(tb testing.TB) {
	tb.Helper()
	rabbitmqctl(tb, "close_all_connections", "--vhost", v.name, "test")
}

// echoScripts is what the test echo handler serves.
var echoScripts = []ScriptInfo{{Name: "echo", Versions: []string{"1.0.0"}, Description: "echo", ParametersSchema: json.RawMessage(`{}`)}}

// echo is the contract's echo script: data = parameters, after
// parameters.sleep_ms milliseconds.
func echo(ctx context.Context, t Task) (json.RawMessage, error) {
	var p struct {
		SleepMS float64 `json:"sleep_ms"`
	}
	_ = json.Unmarshal(t.Parameters, &p)
	if p.SleepMS > 0 {
		tm := time.NewTimer(time.Duration(p.SleepMS * float64(time.Millisecond)))
		defer tm.Stop()
		select {
		case <-tm.C:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
	return t.Parameters, nil
}

var echoHandler = FuncHandler{ScriptList: echoScripts, Func: echo}

// testLogger logs to the test at Info and above.
func testLogger(tb testing.TB) *zap.Logger {
	return zaptest.NewLogger(tb, zaptest.Level(zap.InfoLevel))
}

// startServer runs a server until the test ends and waits until it consumes.
func startServer(tb testing.TB, cfg ServerConfig, h Handler) *Server {
	tb.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(tb)
	}
	if cfg.ReconnectMin == 0 {
		cfg.ReconnectMin = 20 * time.Millisecond
		cfg.ReconnectMax = 200 * time.Millisecond
	}
	if cfg.GracePeriod == 0 {
		cfg.GracePeriod = 2 * time.Second
	}
	s, err := NewServer(cfg, h)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Serve: %v", err)
		}
	}
	tb.Cleanup(func() {
		select {
		case <-done:
		default:
			stop()
		}
	})
	select {
	case <-s.Ready():
	case <-time.After(10 * time.Second):
		tb.Fatal("server not ready within 10s")
	}
	return s
}

// startClient starts a client (closed at cleanup) and waits until connected.
func startClient(tb testing.TB, cfg ClientConfig) *Client {
	tb.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(tb)
	}
	if cfg.ReconnectMin == 0 {
		cfg.ReconnectMin = 20 * time.Millisecond
		cfg.ReconnectMax = 200 * time.Millisecond
	}
	c, err := NewClient(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	c.Start()
	tb.Cleanup(func() { _ = c.Close() })
	waitFor(tb, 10*time.Second, "client connected", c.Connected)
	return c
}

// waitFor waits until cond holds, checking every 10ms.
func waitFor(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// echoTask returns an echo task with the given parameters.
func echoTask(params any) Task {
	b, err := json.Marshal(params)
	if err != nil {
		panic(fmt.Sprintf("encoding parameters: %v", err))
	}
	return Task{ScriptName: "echo", Parameters: b, ClientID: "test"}
}

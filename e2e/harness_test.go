// Package e2e tests scrapegate as it runs: the gateway binary (a Caddy build)
// with a real Caddyfile, real worker processes and the real RabbitMQ on
// 127.0.0.1:5672. Every test gets a vhost of its own, so tests can run in
// parallel and be rerun.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// bins holds the binaries TestMain builds once for the whole package.
var bins struct {
	Gateway string
	Worker  string
}

// baseAMQPURL is the broker every test's vhost lives on.
var baseAMQPURL = envOr("E2E_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	root := repoRoot()
	if out, err := exec.Command(filepath.Join(root, "scripts", "ensure-rabbitmq.sh")).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: RabbitMQ is not available: %v\n%s", err, out)
		return 1
	}
	dir, err := os.MkdirTemp("", "scrapegate-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	bins.Gateway = filepath.Join(dir, "scrapegate")
	bins.Worker = filepath.Join(dir, "scrapegate-worker")
	for bin, pkg := range map[string]string{bins.Gateway: "./cmd/scrapegate", bins.Worker: "./cmd/scrapegate-worker"} {
		args := []string{"build", "-o", bin}
		if os.Getenv("E2E_RACE") == "1" {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, pkg)...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: building %s: %v\n%s", pkg, err, out)
			return 1
		}
	}
	return m.Run()
}

// repoRoot returns the module root (the parent of this package's directory).
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// rabbitmqctl runs rabbitmqctl with args and fails the test on error.
func rabbitmqctl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("rabbitmqctl", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("rabbitmqctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

var vhostUnsafe = regexp.MustCompile(`[^a-zA-Z0-9_-]+`)

// NewVHost creates a RabbitMQ vhost for the test (deleted when it ends) and
// returns the AMQP URL that points at it. The vhost's name is in the URL's path.
func NewVHost(t testing.TB) string {
	t.Helper()
	name := vhostUnsafe.ReplaceAllString(t.Name(), "_")
	if len(name) > 40 {
		name = name[:40]
	}
	vhost := "e2e-" + name + "-" + randHex(4)
	rabbitmqctl(t, "add_vhost", vhost)
	t.Cleanup(func() {
		if out, err := exec.Command("rabbitmqctl", "delete_vhost", vhost).CombinedOutput(); err != nil {
			t.Logf("deleting vhost %s: %v: %s", vhost, err, out)
		}
	})
	rabbitmqctl(t, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
	u, err := url.Parse(baseAMQPURL)
	if err != nil {
		t.Fatalf("parsing E2E_AMQP_URL: %v", err)
	}
	u.Path = "/" + vhost
	return u.String()
}

// VHostOf returns the vhost named by an AMQP URL made by NewVHost.
func VHostOf(amqpURL string) string {
	u, err := url.Parse(amqpURL)
	if err != nil {
		return ""
	}
	return strings.TrimPrefix(u.Path, "/")
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// syncBuffer is a bytes.Buffer safe for a process's writes and a test's reads.
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

// proc is a child process of a test: its command, output, and exit.
type proc struct {
	cmd    *exec.Cmd
	logs   syncBuffer
	done   chan struct{}
	waited error
}

func startProc(t testing.TB, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = repoRoot()
	p.cmd.Env = env
	p.cmd.Stdout = &p.logs
	p.cmd.Stderr = &p.logs
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		p.waited = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(10 * time.Second)
		if t.Failed() || os.Getenv("E2E_LOGS") == "1" {
			logProcOutput(t, name, p.cmd.Process.Pid, p.logs.String())
		}
	})
	return p
}

// logProcOutput saves a child process's whole output under
// test-artifacts/logs and puts only its last lines in the test's output: CI
// shows the end of a failed run's output, where the test's own errors must
// stay readable rather than buried under hundreds of log lines.
func logProcOutput(t testing.TB, name string, pid int, out string) {
	const shown = 15
	dir := filepath.Join(repoRoot(), "test-artifacts", "logs")
	file := filepath.Join(dir, fmt.Sprintf("%s-%s-%d.log", strings.ReplaceAll(t.Name(), "/", "_"), filepath.Base(name), pid))
	if err := os.MkdirAll(dir, 0o755); err == nil {
		err = os.WriteFile(file, []byte(out), 0o644)
		if err == nil {
			t.Logf("---- %s (pid %d): whole output in %s; its last %d lines ----\n%s", name, pid, file, shown, tail(out, shown))
			return
		}
	}
	t.Logf("---- %s (pid %d) output ----\n%s", name, pid, tail(out, 200))
}

// caddyfilePath resolves a Caddyfile name: relative to the repository root
// unless absolute.
func caddyfilePath(name string) string {
	if filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(repoRoot(), name)
}

// stop sends SIGTERM, waits up to grace, then kills the process group.
func (p *proc) stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	// Nothing the process started may outlive it.
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func tail(s string, lines int) string {
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

// baseEnv is the environment every child process starts from: PATH and a
// home of its own, nothing else of the test runner's.
func baseEnv(t testing.TB) []string {
	home := t.TempDir()
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"XDG_DATA_HOME=" + filepath.Join(home, "data"),
		"XDG_CONFIG_HOME=" + filepath.Join(home, "config"),
		"TMPDIR=" + os.TempDir(),
	}
}

// Gateway is a running scrapegate gateway process.
type Gateway struct {
	// URL is the gateway's HTTP address, like "http://127.0.0.1:PORT".
	URL string
	// AdminURL is its admin API, like "http://127.0.0.1:PORT".
	AdminURL string
	// Env is the environment it was started with (KEY -> value).
	Env map[string]string
	// Caddyfile is the path of the config it was started with.
	Caddyfile string
	p         *proc
}

// GatewaySecret is the JWT_SECRET_KEY gateways get unless the test sets one.
const GatewaySecret = "e2e-secret-0123456789abcdef0123456789abcdef"

// StartGateway runs the gateway binary with caddyfile (a path relative to the
// repository root, like "Caddyfile" or "testdata/x.Caddyfile"). env must set
// AMQP_URL (use NewVHost); SCRAPEGATE_ADDR and SCRAPEGATE_ADMIN get free
// ports and JWT_SECRET_KEY gets GatewaySecret unless env sets them. It returns
// once the gateway listens and its admin API answers.
func StartGateway(t testing.TB, caddyfile string, env map[string]string) *Gateway {
	t.Helper()
	if env["AMQP_URL"] == "" {
		t.Fatal("StartGateway: env must set AMQP_URL (use NewVHost)")
	}
	g := &Gateway{Env: map[string]string{
		// ":PORT", not "127.0.0.1:PORT": Caddy serves a site address with
		// a host over HTTPS (an internal certificate for an IP address).
		"SCRAPEGATE_ADDR":  fmt.Sprintf(":%d", FreePort(t)),
		"SCRAPEGATE_ADMIN": fmt.Sprintf("127.0.0.1:%d", FreePort(t)),
		"JWT_SECRET_KEY":   GatewaySecret,
	}}
	for k, v := range env {
		g.Env[k] = v
	}
	g.URL = "http://" + dialAddr(g.Env["SCRAPEGATE_ADDR"])
	g.AdminURL = "http://" + g.Env["SCRAPEGATE_ADMIN"]
	procEnv := baseEnv(t)
	for k, v := range g.Env {
		procEnv = append(procEnv, k+"="+v)
	}
	g.Caddyfile = caddyfilePath(caddyfile)
	g.p = startProc(t, "gateway", procEnv, bins.Gateway, "run", "--config", g.Caddyfile, "--adapter", "caddyfile")
	deadline := time.Now().Add(60 * time.Second)
	for {
		if g.p.exited() {
			t.Fatalf("gateway exited at start: %v\n%s", g.p.waited, tail(g.p.logs.String(), 60))
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway did not come up within 60s\n%s", tail(g.p.logs.String(), 60))
		}
		if g.answers() {
			return g
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (g *Gateway) answers() bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(g.AdminURL + "/config/")
	if err != nil {
		return false
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	conn, err := net.DialTimeout("tcp", dialAddr(g.Env["SCRAPEGATE_ADDR"]), time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// dialAddr turns a listen address (":PORT", "host:PORT", "http://host:PORT")
// into one to dial.
func dialAddr(listen string) string {
	listen = strings.TrimPrefix(listen, "http://")
	if strings.HasPrefix(listen, ":") {
		return "127.0.0.1" + listen
	}
	return listen
}

// WaitHealthy waits until GET /health answers 200 (the broker link is up).
func (g *Gateway) WaitHealthy(t testing.TB, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	c := http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		resp, err := c.Get(g.URL + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("gateway not healthy within %v\n%s", within, tail(g.Logs(), 60))
}

// Reload loads caddyfile (relative to the repository root) through the admin
// API, as an operator's `caddy reload` does.
func (g *Gateway) Reload(t testing.TB, caddyfile string) {
	t.Helper()
	body, err := os.ReadFile(caddyfilePath(caddyfile))
	if err != nil {
		t.Fatalf("reading %s: %v", caddyfile, err)
	}
	req, _ := http.NewRequest(http.MethodPost, g.AdminURL+"/load", bytes.NewReader(body))
	req.Header.Set("Content-Type", "text/caddyfile")
	// Identical configs are a no-op in Caddy; this header forces the reload.
	req.Header.Set("Cache-Control", "must-revalidate")
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("reloading gateway config: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("reloading gateway config: %s: %s", resp.Status, b)
	}
}

// Stop stops the gateway with SIGTERM (SIGKILL after 10 s).
func (g *Gateway) Stop(t testing.TB) { g.p.stop(10 * time.Second) }

// Logs returns everything the gateway wrote so far.
func (g *Gateway) Logs() string { return g.p.logs.String() }

// Pid returns the gateway's process id.
func (g *Gateway) Pid() int { return g.p.cmd.Process.Pid }

// Worker is a running scrapegate-worker process.
type Worker struct {
	p *proc
}

// StartWorker runs the worker binary on amqpURL with extra args and returns
// once it logged "worker ready".
func StartWorker(t testing.TB, amqpURL string, args ...string) *Worker {
	t.Helper()
	w := &Worker{}
	all := append([]string{"-amqp-url", amqpURL, "-heartbeat-interval", "1s"}, args...)
	w.p = startProc(t, "worker", baseEnv(t), bins.Worker, all...)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(w.p.logs.String(), "worker ready") {
		if w.p.exited() {
			t.Fatalf("worker exited at start: %v\n%s", w.p.waited, tail(w.p.logs.String(), 60))
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker not ready within 30s\n%s", tail(w.p.logs.String(), 60))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return w
}

// Signal sends sig to the worker.
func (w *Worker) Signal(sig os.Signal) { _ = w.p.cmd.Process.Signal(sig) }

// Wait waits for the worker to exit, at most d; it reports whether it did.
func (w *Worker) Wait(d time.Duration) bool {
	select {
	case <-w.p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// Logs returns everything the worker wrote so far.
func (w *Worker) Logs() string { return w.p.logs.String() }

// Pid returns the worker's process id.
func (w *Worker) Pid() int { return w.p.cmd.Process.Pid }

// MintToken returns an HS256 access token for clientID signed with secret,
// valid for ttl, with extra claims merged in (they may override the defaults).
func MintToken(t testing.TB, secret, clientID string, ttl time.Duration, extra map[string]any) string {
	t.Helper()
	now := time.Now()
	claims := jwt.MapClaims{
		"sub":       clientID,
		"client_id": clientID,
		"type":      "access",
		"iat":       now.Unix(),
		"exp":       now.Add(ttl).Unix(),
	}
	for k, v := range extra {
		claims[k] = v
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatalf("minting token: %v", err)
	}
	return s
}

// httpClient is shared by the helpers: keep-alive, generous timeout.
var httpClient = &http.Client{
	Timeout:   5 * time.Minute,
	Transport: &http.Transport{MaxIdleConnsPerHost: 512, MaxConnsPerHost: 0},
}

// PostJSON posts body (marshalled unless it is a string or []byte) to url with
// Content-Type application/json and headers, and returns the response and its
// body. A transport error fails the test.
func PostJSON(t testing.TB, url string, body any, headers map[string]string) (*http.Response, []byte) {
	t.Helper()
	return PostJSONContext(t, context.Background(), url, body, headers)
}

// PostJSONContext is PostJSON bound to ctx.
func PostJSONContext(t testing.TB, ctx context.Context, url string, body any, headers map[string]string) (*http.Response, []byte) {
	t.Helper()
	var raw []byte
	switch b := body.(type) {
	case string:
		raw = []byte(b)
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(body); err != nil {
			t.Fatalf("marshalling body: %v", err)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("building request: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading response of POST %s: %v", url, err)
	}
	return resp, b
}

// Bearer returns the Authorization header map for token.
func Bearer(token string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + token}
}

// Conn is one broker connection as rabbitmqctl lists it.
type Conn struct {
	// Name is the broker's name of the connection ("127.0.0.1:PORT -> 127.0.0.1:5672"):
	// it changes when the client reconnects.
	Name string
	// ClientName is the name the client gave it (connection_name).
	ClientName string
}

var connNameRe = regexp.MustCompile(`\{"connection_name",(?:longstr,)?"([^"]*)"\}`)

// Connections returns the broker connections on vhost.
func Connections(t testing.TB, vhost string) []Conn {
	t.Helper()
	// list_connections ignores -p: list the vhost column and filter on it
	out := rabbitmqctl(t, "-q", "list_connections", "--no-table-headers", "name", "vhost", "client_properties")
	var conns []Conn
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.SplitN(sc.Text(), "\t", 3)
		if len(fields) != 3 || fields[1] != vhost {
			continue
		}
		name, props := fields[0], fields[2]
		c := Conn{Name: name}
		if m := connNameRe.FindStringSubmatch(props); m != nil {
			c.ClientName = m[1]
		}
		conns = append(conns, c)
	}
	return conns
}

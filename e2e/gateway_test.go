package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The gateway's tests: scrape_rpc through a real gateway process (a Caddy
// build, testdata/gateway.Caddyfile), a real worker and the real RabbitMQ.

// gatewayCaddyfile is the test config: scrape_rpc without auth, side routes
// for basic_auth and rate_limit, scrape_error in handle_errors.
const gatewayCaddyfile = "testdata/gateway.Caddyfile"

// errorBody is the JSON error body of http-api.md.
type errorBody struct {
	Error     string `json:"error"`
	Detail    string `json:"detail"`
	Code      string `json:"code"`
	RequestID string `json:"request_id"`
	Timestamp string `json:"timestamp"`
}

// scrapeResult is the 200 body of POST /scrape.
type scrapeResult struct {
	RequestID     string          `json:"request_id"`
	Status        string          `json:"status"`
	Data          json.RawMessage `json:"data"`
	Error         *string         `json:"error"`
	ErrorCode     *string         `json:"error_code"`
	ExecutionTime float64         `json:"execution_time"`
	CreatedAt     time.Time       `json:"created_at"`
	CompletedAt   time.Time       `json:"completed_at"`
}

var uuidRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// decodeError checks that b is a complete error body and returns it.
func decodeError(t *testing.T, resp *http.Response, b []byte) errorBody {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("content type %q", ct)
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatalf("error body is not JSON: %v: %s", err, b)
	}
	for _, k := range []string{"error", "detail", "code", "request_id", "timestamp"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("error body lacks %q: %s", k, b)
		}
	}
	var eb errorBody
	_ = json.Unmarshal(b, &eb)
	if !uuidRe.MatchString(eb.RequestID) {
		t.Errorf("request_id %q is not a UUID", eb.RequestID)
	}
	if _, err := time.Parse(time.RFC3339Nano, eb.Timestamp); err != nil {
		t.Errorf("timestamp %q: %v", eb.Timestamp, err)
	}
	return eb
}

// do sends a request with a body and headers and returns the response and body.
func do(t *testing.T, method, url, body string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// logLine returns the first line of logs that has every one of subs, or "".
func logLine(logs string, subs ...string) string {
	for _, line := range strings.Split(logs, "\n") {
		ok := true
		for _, s := range subs {
			if !strings.Contains(line, s) {
				ok = false
				break
			}
		}
		if ok {
			return line
		}
	}
	return ""
}

// waitLog waits until a line of the logs of get has every one of subs.
func waitLog(t *testing.T, get func() string, within time.Duration, subs ...string) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if line := logLine(get(), subs...); line != "" {
			return line
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q within %v", subs, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestGatewayAPI runs every row of the error table that scrape_rpc owns, the
// success path, and the rendering of other handlers' errors, against one
// gateway and one worker; it ends with the worker gone (NO_WORKERS).
func TestGatewayAPI(t *testing.T) {
	amqpURL := NewVHost(t)
	w := StartWorker(t, amqpURL)
	g := StartGateway(t, gatewayCaddyfile, map[string]string{"AMQP_URL": amqpURL})
	scrape := g.URL + "/scrape"
	en := map[string]string{"Accept-Language": "en-US,en;q=0.8"}

	waitEcho(t, g)

	t.Run("success", func(t *testing.T) {
		resp, b := PostJSON(t, scrape, map[string]any{
			"script_name": "echo", "script_version": nil,
			"parameters": map[string]any{"url": "https://example.com", "n": 1}, "timeout": 30,
		}, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		var r scrapeResult
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		var data map[string]any
		_ = json.Unmarshal(r.Data, &data)
		if r.Status != "completed" || data["url"] != "https://example.com" || r.Error != nil || r.ErrorCode != nil ||
			!uuidRe.MatchString(r.RequestID) || r.CreatedAt.IsZero() || r.CompletedAt.Before(r.CreatedAt.Add(-time.Second)) {
			t.Errorf("result %s", b)
		}
		if !strings.Contains(string(b), `"error":null`) || !strings.Contains(string(b), `"error_code":null`) {
			t.Errorf("error fields must be null: %s", b)
		}
		if resp.Header.Get("X-Config") != "initial" {
			t.Errorf("X-Config %q", resp.Header.Get("X-Config"))
		}
		// logged once, with request id, client id, script, outcome, duration
		line := waitLog(t, g.Logs, 5*time.Second, `"msg":"scrape call"`, `"request_id":"`+r.RequestID+`"`)
		for _, s := range []string{`"client_id":"anonymous"`, `"script":"echo"`, `"outcome":"completed"`, `"duration":`} {
			if !strings.Contains(line, s) {
				t.Errorf("log line lacks %s: %s", s, line)
			}
		}
		if n := strings.Count(g.Logs(), `"request_id":"`+r.RequestID+`"`); n != 1 {
			t.Errorf("request logged %d times by scrape_rpc", n)
		}
	})

	cases := []struct {
		name    string
		method  string
		path    string
		body    string
		hdr     map[string]string
		status  int
		code    string
		detail  string
		message string
		within  time.Duration // the answer must come this fast
	}{
		{name: "malformed json", body: `{"script_name": "echo",`, status: 400, code: "MALFORMED_JSON",
			message: "요청 본문이 올바른 JSON이 아닙니다."},
		{name: "malformed json en", body: `not json`, hdr: en, status: 400, code: "MALFORMED_JSON",
			message: "The request body is not valid JSON."},
		{name: "unsupported media type", body: `{"script_name":"echo"}`, hdr: map[string]string{"Content-Type": "text/plain"},
			status: 415, code: "UNSUPPORTED_MEDIA_TYPE"},
		{name: "body too large", body: `{"script_name":"echo","parameters":{"x":"` + strings.Repeat("x", 2<<20) + `"}}`,
			status: 413, code: "BODY_TOO_LARGE"},
		{name: "unknown field", body: `{"script_name":"echo","script":"x"}`, status: 422, code: "VALIDATION_ERROR",
			detail: `unknown field "script"`, message: "요청 값이 올바르지 않습니다."},
		{name: "validation en", body: `{"script_name":"no way","timeout":0}`, hdr: en, status: 422, code: "VALIDATION_ERROR",
			detail: "script_name: must match ^[a-zA-Z0-9_-]+$; timeout: must be between 1 and 3600", message: "The request failed validation."},
		{name: "unknown script", body: `{"script_name":"no_such_script"}`, status: 404, code: "UNKNOWN_SCRIPT", within: 2 * time.Second},
		{name: "unknown version", body: `{"script_name":"echo","script_version":"99.0.0"}`, status: 404, code: "UNKNOWN_VERSION"},
		{name: "invalid parameters", body: `{"script_name":"echo","parameters":{"sleep_ms":-5}}`, hdr: en, status: 422, code: "INVALID_PARAMETERS",
			message: "The script parameters are invalid.", detail: "sleep_ms"},
		{name: "timeout", body: `{"script_name":"echo","parameters":{"sleep_ms":5000},"timeout":1}`, status: 504, code: "TIMEOUT",
			within: 2500 * time.Millisecond, message: "요청 시간이 초과되었습니다."},
		{name: "method not allowed", method: "GET", status: 405, code: "METHOD_NOT_ALLOWED"},
		{name: "caddy 404", method: "GET", path: "/no/such/path", hdr: en, status: 404, code: "NOT_FOUND",
			message: "The requested path does not exist."},
		{name: "basic_auth 401", method: "GET", path: "/private", status: 401, code: "UNAUTHORIZED"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			method, path := tc.method, tc.path
			if method == "" {
				method = "POST"
			}
			if path == "" {
				path = "/scrape"
			}
			hdr := map[string]string{"Content-Type": "application/json"}
			for k, v := range tc.hdr {
				hdr[k] = v
			}
			start := time.Now()
			resp, b := do(t, method, g.URL+path, tc.body, hdr)
			took := time.Since(start)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, b)
			}
			eb := decodeError(t, resp, b)
			if eb.Code != tc.code {
				t.Errorf("code %s, want %s: %s", eb.Code, tc.code, b)
			}
			if tc.detail != "" && !strings.Contains(eb.Detail, tc.detail) {
				t.Errorf("detail %q lacks %q", eb.Detail, tc.detail)
			}
			if tc.message != "" && eb.Error != tc.message {
				t.Errorf("message %q, want %q", eb.Error, tc.message)
			}
			if tc.within > 0 && took > tc.within {
				t.Errorf("answered in %v, want under %v", took, tc.within)
			}
			if tc.code == "UNAUTHORIZED" && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("WWW-Authenticate was dropped")
			}
		})
	}

	t.Run("rate limited", func(t *testing.T) {
		var resp *http.Response
		var b []byte
		for range 3 {
			resp, b = do(t, "GET", g.URL+"/limited", "", en)
		}
		if resp.StatusCode != 429 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		eb := decodeError(t, resp, b)
		if eb.Code != "RATE_LIMITED" || eb.Error != "Rate limit exceeded; retry later." {
			t.Errorf("body %s", b)
		}
		if resp.Header.Get("Retry-After") == "" {
			t.Error("Retry-After was dropped")
		}
	})

	t.Run("info", func(t *testing.T) {
		resp, b := do(t, "GET", g.URL+"/", "", nil)
		var info map[string]string
		if err := json.Unmarshal(b, &info); err != nil || resp.StatusCode != 200 || info["name"] != "scrapegate" || info["status"] != "ok" || info["version"] == "" {
			t.Errorf("GET /: %d %s", resp.StatusCode, b)
		}
	})

	t.Run("client gone", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(500*time.Millisecond, cancel)
		req, _ := http.NewRequestWithContext(ctx, "POST", scrape, strings.NewReader(`{"script_name":"echo","parameters":{"sleep_ms":20000}}`))
		req.Header.Set("Content-Type", "application/json")
		if resp, err := httpClient.Do(req); err == nil {
			resp.Body.Close()
			t.Fatalf("the request was not cancelled: %d", resp.StatusCode)
		}
		line := waitLog(t, g.Logs, 5*time.Second, `"msg":"scrape call"`, `"outcome":"CLIENT_CLOSED_REQUEST"`)
		if !strings.Contains(line, `"script":"echo"`) {
			t.Errorf("log %s", line)
		}
		// the worker was told: it stopped the task
		m := regexp.MustCompile(`"request_id":"([^"]+)"`).FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("no request id in %s", line)
		}
		waitLog(t, w.Logs, 5*time.Second, `"request_id":"`+m[1]+`"`, `"error_code":"CANCELLED"`)
		// the access log records it as a 499
		waitLog(t, g.Logs, 5*time.Second, `"status":499`)
	})

	t.Run("no workers", func(t *testing.T) {
		w.Signal(syscall.SIGTERM)
		if !w.Wait(40 * time.Second) {
			t.Fatal("worker did not stop")
		}
		// the worker's queue stays bound; its heartbeats stop: after three
		// intervals (1 s each here) it no longer counts as live
		time.Sleep(4 * time.Second)
		start := time.Now()
		resp, b := PostJSON(t, scrape, `{"script_name":"echo","timeout":30}`, nil)
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("NO_WORKERS took %v: it must not wait for the timeout", took)
		}
		if resp.StatusCode != 503 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		if eb := decodeError(t, resp, b); eb.Code != "NO_WORKERS" {
			t.Errorf("body %s", b)
		}
	})
}

// TestGatewayBrokerUnavailable starts a gateway whose broker does not
// answer: calls fail at once with 503 BROKER_UNAVAILABLE, in both languages,
// and GET / says the gateway is degraded.
func TestGatewayBrokerUnavailable(t *testing.T) {
	dead := fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", FreePort(t))
	g := StartGateway(t, gatewayCaddyfile, map[string]string{"AMQP_URL": dead})
	for _, lang := range []string{"", "en"} {
		start := time.Now()
		resp, b := PostJSON(t, g.URL+"/scrape", `{"script_name":"echo"}`, map[string]string{"Accept-Language": lang})
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("took %v: a down link must answer at once", took)
		}
		if resp.StatusCode != 503 {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		eb := decodeError(t, resp, b)
		want := "메시지 브로커에 연결할 수 없습니다. 잠시 후 다시 시도하세요."
		if lang == "en" {
			want = "The message broker is unavailable; retry later."
		}
		if eb.Code != "BROKER_UNAVAILABLE" || eb.Error != want {
			t.Errorf("body %s", b)
		}
		if strings.Contains(string(b), "guest") || strings.Contains(string(b), "127.0.0.1") {
			t.Errorf("internal detail in the body: %s", b)
		}
	}
	resp, b := do(t, "GET", g.URL+"/", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"status":"degraded"`) {
		t.Errorf("GET /: %d %s", resp.StatusCode, b)
	}
}

// TestGatewayReloadKeepsCalls reloads the config through the admin API while
// 200 calls are in flight: none fails, and the broker connection (by the
// broker's own list) is the same before and after.
func TestGatewayReloadKeepsCalls(t *testing.T) {
	const calls = 200
	amqpURL := NewVHost(t)
	vhost := VHostOf(amqpURL)
	StartWorker(t, amqpURL, "-concurrency", "256")
	g := StartGateway(t, gatewayCaddyfile, map[string]string{"AMQP_URL": amqpURL})

	waitEcho(t, g)
	before := gatewayConns(t, vhost)
	if len(before) != 1 {
		t.Fatalf("gateway connections before the reload: %+v", before)
	}

	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	started := make(chan struct{}, calls)
	for i := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			started <- struct{}{}
			body := fmt.Sprintf(`{"script_name":"echo","parameters":{"i":%d,"sleep_ms":2500},"timeout":60}`, i)
			req, _ := http.NewRequest("POST", g.URL+"/scrape", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := httpClient.Do(req)
			var b []byte
			if err == nil {
				b, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				failures = append(failures, fmt.Sprintf("call %d: %v", i, err))
			case resp.StatusCode != 200 || !strings.Contains(string(b), `"status":"completed"`) || !strings.Contains(string(b), fmt.Sprintf(`"i":%d`, i)):
				failures = append(failures, fmt.Sprintf("call %d: %d %s", i, resp.StatusCode, b))
			}
		}()
	}
	for range calls {
		<-started
	}
	// let every call reach the worker before the reload
	time.Sleep(time.Second)
	g.Reload(t, "testdata/gateway-reload.Caddyfile")
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d calls failed across the reload, e.g. %s", len(failures), calls, failures[0])
	}

	resp, b := PostJSON(t, g.URL+"/scrape", `{"script_name":"echo"}`, nil)
	if resp.StatusCode != 200 || resp.Header.Get("X-Config") != "reloaded" {
		t.Fatalf("after the reload: %d, X-Config %q: %s", resp.StatusCode, resp.Header.Get("X-Config"), b)
	}
	after := gatewayConns(t, vhost)
	if len(after) != 1 || after[0] != before[0] {
		t.Fatalf("broker connection changed across the reload: before %+v, after %+v", before, after)
	}
	if !strings.Contains(g.Logs(), "connecting to broker") || strings.Count(g.Logs(), `"msg":"connecting to broker"`) != 1 {
		t.Errorf("the link must be started once: %d starts", strings.Count(g.Logs(), `"msg":"connecting to broker"`))
	}
}

// waitEcho waits until an echo call through g succeeds.
func waitEcho(t *testing.T, g *Gateway) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, b := PostJSON(t, g.URL+"/scrape", `{"script_name":"echo"}`, nil)
		if resp.StatusCode == 200 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("echo never succeeded: %d %s\n%s", resp.StatusCode, b, tail(g.Logs(), 40))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// gatewayConns returns the broker's connections of gateways on vhost.
func gatewayConns(t *testing.T, vhost string) []Conn {
	t.Helper()
	var out []Conn
	for _, c := range Connections(t, vhost) {
		if strings.HasPrefix(c.ClientName, "scrapegate-gateway-") {
			out = append(out, c)
		}
	}
	return out
}

// TestGatewayDefaultApp runs a config that does not configure the
// scrapegate app: scrape_rpc's ctx.App provisions it with its defaults
// (AMQP_URL from the environment) and Caddy starts it.
func TestGatewayDefaultApp(t *testing.T) {
	amqpURL := NewVHost(t)
	StartWorker(t, amqpURL)
	g := StartGateway(t, "testdata/gateway-noapp.Caddyfile", map[string]string{"AMQP_URL": amqpURL})
	waitEcho(t, g)
	resp, b := do(t, "GET", g.URL+"/", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"status":"ok"`) {
		t.Errorf("GET /: %d %s", resp.StatusCode, b)
	}
	if conns := gatewayConns(t, VHostOf(amqpURL)); len(conns) != 1 {
		t.Errorf("gateway connections: %+v", conns)
	}
}

// TestGatewayDirectReplyMode runs the gateway with reply_mode direct
// (direct reply-to): calls succeed, and the gateway declares no reply queue.
func TestGatewayDirectReplyMode(t *testing.T) {
	amqpURL := NewVHost(t)
	StartWorker(t, amqpURL)
	g := StartGateway(t, gatewayCaddyfile, map[string]string{"AMQP_URL": amqpURL, "AMQP_REPLY_MODE": "direct"})
	waitEcho(t, g)
	for i := range 20 {
		resp, b := PostJSON(t, g.URL+"/scrape", map[string]any{"script_name": "echo", "parameters": map[string]int{"i": i}}, nil)
		if resp.StatusCode != 200 || !strings.Contains(string(b), fmt.Sprintf(`"data":{"i":%d}`, i)) {
			t.Fatalf("call %d: %d %s", i, resp.StatusCode, b)
		}
	}
	if out := rabbitmqctl(t, "-q", "list_queues", "-p", VHostOf(amqpURL), "name"); strings.Contains(out, "scrape.replies.") {
		t.Errorf("direct reply mode declared a reply queue:\n%s", out)
	}
	if !strings.Contains(g.Logs(), `"reply_mode":"direct"`) {
		t.Error("the gateway did not start in direct reply mode")
	}
}

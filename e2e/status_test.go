package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The /health, /status and /metrics tests, through the status gateway
// (testdata/status.Caddyfile).

// statusBody is the part of GET /status the tests read.
type statusBody struct {
	Status         string  `json:"status"`
	UptimeSeconds  float64 `json:"uptime_seconds"`
	QueueLength    int     `json:"queue_length"`
	ActiveWorkers  int     `json:"active_workers"`
	CompletedTasks uint64  `json:"completed_tasks"`
	FailedTasks    uint64  `json:"failed_tasks"`
	InFlight       int64   `json:"in_flight"`
	CPUPercent     float64 `json:"cpu_percent"`
	MemoryRSSBytes uint64  `json:"memory_rss_bytes"`
	Broker         struct {
		Connected      bool   `json:"connected"`
		ConnectionName string `json:"connection_name"`
		Reconnects     uint64 `json:"reconnects"`
	} `json:"broker"`
	Queues []struct {
		Pool     string `json:"pool"`
		Messages int    `json:"messages"`
		Stale    bool   `json:"stale"`
	} `json:"queues"`
	Workers []struct {
		WorkerID      string    `json:"worker_id"`
		Live          bool      `json:"live"`
		LastHeartbeat time.Time `json:"last_heartbeat"`
		Scripts       []struct {
			Name string `json:"name"`
		} `json:"scripts"`
	} `json:"workers"`
	Scripts map[string]struct {
		Total     uint64            `json:"total"`
		Completed uint64            `json:"completed"`
		ByOutcome map[string]uint64 `json:"by_outcome"`
		Latency   struct {
			P50 float64 `json:"p50"`
		} `json:"latency_ms"`
	} `json:"scripts"`
	Process struct {
		SampledAt *time.Time `json:"sampled_at"`
		RSS       uint64     `json:"memory_rss_bytes"`
	} `json:"process"`
	WebSocketClients int `json:"websocket_clients"`
	Series           *struct {
		Start int64    `json:"start"`
		Calls []uint64 `json:"calls"`
	} `json:"series"`
}

// statusOf returns GET /status as token.
func statusOf(t testing.TB, g *Gateway, token string) statusBody {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, g.URL+"/status", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("GET /status: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /status: %s: %s", resp.Status, b)
	}
	var st statusBody
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("GET /status: %v: %s", err, b)
	}
	return st
}

// awaitStatus polls /status until cond holds, failing after within.
func awaitStatus(t testing.TB, g *Gateway, token string, within time.Duration, what string, cond func(statusBody) bool) statusBody {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st := statusOf(t, g, token)
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("/status never showed %s within %v; last: %+v", what, within, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// health returns the status code and body of GET /health.
func health(t testing.TB, g *Gateway) (int, map[string]any) {
	t.Helper()
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(g.URL + "/health")
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// metricValue returns the value of one unlabelled metric (or the sum of a
// labelled one's series) from GET /metrics.
func metricValue(t testing.TB, g *Gateway, name string) float64 {
	t.Helper()
	resp, err := httpClient.Get(g.URL + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

func TestHealthFollowsBrokerLink(t *testing.T) {
	g, _, amqpURL := startStatusGateway(t, nil)
	code, body := health(t, g)
	if code != http.StatusOK || body["status"] != "ok" {
		t.Fatalf("healthy gateway: %d %v", code, body)
	}
	comps, _ := body["components"].(map[string]any)
	for _, c := range []string{"broker", "gateway", "workers"} {
		if _, ok := comps[c].(map[string]any); !ok {
			t.Errorf("component %s missing: %v", c, body)
		}
	}

	// the broker drops this test's connections (this vhost only)
	vhost := VHostOf(amqpURL)
	closed := time.Now()
	rabbitmqctl(t, "close_all_connections", "--vhost", vhost, "test")
	for {
		code, body = health(t, g)
		if code == http.StatusServiceUnavailable {
			break
		}
		if time.Since(closed) > 2*time.Second {
			t.Fatalf("/health still %d %v 2 s after the broker closed the connection", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("/health turned 503 %v after the connection was closed", time.Since(closed).Round(time.Millisecond))
	broker, _ := body["components"].(map[string]any)["broker"].(map[string]any)
	if body["status"] != "unavailable" || broker["status"] != "down" {
		t.Errorf("503 body: %v", body)
	}

	deadline := time.Now().Add(30 * time.Second)
	for {
		if code, _ = health(t, g); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/health not 200 again within 30 s of the reconnect window\n%s", tail(g.Logs(), 40))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("/health 200 again %v after the connection was closed", time.Since(closed).Round(time.Millisecond))
	tok := MintToken(t, GatewaySecret, "ops", time.Hour, nil)
	if st := statusOf(t, g, tok); st.Broker.Reconnects < 1 || !st.Broker.Connected {
		t.Errorf("/status broker after the reconnect: %+v", st.Broker)
	}
	if v := metricValue(t, g, "scrapegate_rpc_reconnects_total"); v < 1 {
		t.Errorf("scrapegate_rpc_reconnects_total = %v", v)
	}
	if v := metricValue(t, g, "scrapegate_broker_connected"); v != 1 {
		t.Errorf("scrapegate_broker_connected = %v", v)
	}
}

func TestStatusNumbersFollowTheSystem(t *testing.T) {
	g, w1, amqpURL := startStatusGateway(t, nil, "-concurrency", "1")
	tok := MintToken(t, GatewaySecret, "ops", time.Hour, nil)

	// /status needs a token; /health does not
	resp, err := httpClient.Get(g.URL + "/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /status without a token: %s", resp.Status)
	}

	st := awaitStatus(t, g, tok, 15*time.Second, "one live worker", func(s statusBody) bool { return s.ActiveWorkers == 1 })
	if st.Status != "ok" || !st.Broker.Connected || st.UptimeSeconds <= 0 || len(st.Workers) != 1 {
		t.Errorf("status %+v", st)
	}
	if ws := st.Workers[0]; !ws.Live || ws.LastHeartbeat.IsZero() || len(ws.Scripts) == 0 {
		t.Errorf("worker %+v", ws)
	}
	st = awaitStatus(t, g, tok, 10*time.Second, "a process sample", func(s statusBody) bool { return s.Process.SampledAt != nil && s.MemoryRSSBytes > 0 })
	base := st.CompletedTasks

	// calls made: the counts, the scripts' table and the series move
	waitScrapeReady(t, g, tok)
	for range 5 {
		scrape(t, g, tok, nil)
	}
	resp2, _ := PostJSON(t, g.URL+"/scrape", map[string]any{"script_name": "no_such_script", "timeout": 5}, Bearer(tok))
	if resp2.StatusCode != http.StatusNotFound {
		t.Errorf("unknown script: %s", resp2.Status)
	}
	st = statusOf(t, g, tok)
	if st.CompletedTasks < base+6 || st.FailedTasks < 1 {
		t.Errorf("completed %d (before %d), failed %d: want +6 (5 and the readiness call), >= 1", st.CompletedTasks, base, st.FailedTasks)
	}
	if echo := st.Scripts["echo"]; echo.Completed < 6 || echo.Latency.P50 <= 0 {
		t.Errorf("scripts.echo = %+v", echo)
	}
	if u := st.Scripts["_unknown"]; u.ByOutcome["UNKNOWN_SCRIPT"] != 1 {
		t.Errorf("scripts._unknown = %+v", u)
	}
	time.Sleep(1100 * time.Millisecond) // the series shows whole seconds
	st = statusOf(t, g, tok)
	var inSeries uint64
	for _, c := range st.Series.Calls {
		inSeries += c
	}
	if inSeries < 7 {
		t.Errorf("the series counts %d calls, want >= 7", inSeries)
	}

	// a busy worker (concurrency 1): the rest wait in the queue, and are in flight
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			PostJSONContext(t, ctx, g.URL+"/scrape", map[string]any{"script_name": "echo", "parameters": map[string]any{"sleep_ms": 3000}, "timeout": 30}, Bearer(tok))
		}()
	}
	st = awaitStatus(t, g, tok, 10*time.Second, "queued tasks", func(s statusBody) bool { return s.QueueLength >= 2 && s.InFlight >= 3 })
	t.Logf("busy: queue_length %d, in_flight %d", st.QueueLength, st.InFlight)
	wg.Wait()
	awaitStatus(t, g, tok, 10*time.Second, "an empty queue", func(s statusBody) bool { return s.QueueLength == 0 && s.InFlight == 0 })

	// workers come and go
	w2 := StartWorker(t, amqpURL)
	awaitStatus(t, g, tok, 10*time.Second, "two live workers", func(s statusBody) bool { return s.ActiveWorkers == 2 })
	w2.Signal(syscall.SIGTERM)
	if !w2.Wait(30 * time.Second) {
		t.Fatal("the second worker did not stop")
	}
	// live until three heartbeat intervals (1 s here) pass without one
	awaitStatus(t, g, tok, 10*time.Second, "one live worker again", func(s statusBody) bool { return s.ActiveWorkers == 1 })
	_ = w1
}

func TestMetricsEndpoint(t *testing.T) {
	g, _, _ := startStatusGateway(t, nil)
	tok := MintToken(t, GatewaySecret, "client-m", time.Hour, nil)
	waitScrapeReady(t, g, tok)
	for range 3 {
		scrape(t, g, tok, nil)
	}
	s := wsOpen(t, g, tok, wsAuthHeader, 64)
	s.handshake(t, "client-m")
	awaitStatus(t, g, tok, 15*time.Second, "the worker's heartbeat", func(s statusBody) bool { return s.ActiveWorkers == 1 })

	check := func(when string) {
		t.Helper()
		resp, err := httpClient.Get(g.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		text := string(b)
		for _, want := range []string{
			`scrapegate_calls_total{outcome="completed",script="echo"}`,
			`scrapegate_call_duration_seconds_bucket{script="echo",le="0.001024"}`,
			`scrapegate_call_duration_seconds_count{script="echo"}`,
			"scrapegate_calls_in_flight 0",
			"scrapegate_broker_connected 1",
			"scrapegate_workers_live 1",
			"scrapegate_websocket_clients 1",
			"scrapegate_websocket_evictions_total",
			"scrapegate_rpc_late_replies_total",
			"scrapegate_rpc_returns_total",
			"scrapegate_rpc_reconnects_total",
			"scrapegate_rpc_timeouts_total",
		} {
			if !strings.Contains(text, want) {
				var ours []string
				for _, l := range strings.Split(text, "\n") {
					if strings.HasPrefix(l, "scrapegate_") && !strings.Contains(l, "_bucket") {
						ours = append(ours, l)
					}
				}
				t.Errorf("%s: /metrics lacks %s; it has:\n%s", when, want, strings.Join(ours, "\n"))
			}
		}
		if v := metricValue(t, g, `scrapegate_calls_total{outcome="completed",script="echo"}`); v < 4 {
			t.Errorf("%s: completed echo calls = %v, want >= 4", when, v)
		}
	}
	check("before a reload")
	// a reload registers the metrics in the new config's registry; the
	// counts live in the pooled broker link and carry on
	g.Reload(t, statusCaddyfile)
	s = wsOpen(t, g, tok, wsAuthHeader, 64)
	s.handshake(t, "client-m")
	check("after a reload")
}

package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/scrapegate/scrapegate/rpc"
)

// fakeLink is a linkClient for unit tests.
type fakeLink struct {
	connected atomic.Bool
	mu        sync.Mutex
	workers   []rpc.WorkerInfo
	depths    map[string][2]int
	depthErr  error
	block     chan struct{} // when set, QueueDepth waits for it (or ctx)
	queries   atomic.Int64
	stats     rpc.ClientStats
}

func newFakeLink() *fakeLink {
	f := &fakeLink{depths: map[string][2]int{}}
	f.connected.Store(true)
	return f
}

func (f *fakeLink) Connected() bool        { return f.connected.Load() }
func (f *fakeLink) ConnectionName() string { return "scrapegate-gateway-test" }
func (f *fakeLink) Stats() rpc.ClientStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

func (f *fakeLink) Workers() []rpc.WorkerInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]rpc.WorkerInfo(nil), f.workers...)
}

func (f *fakeLink) QueueDepth(ctx context.Context, pool string) (int, int, error) {
	f.queries.Add(1)
	f.mu.Lock()
	block, d, err := f.block, f.depths[pool], f.depthErr
	f.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		}
	}
	if err != nil {
		return 0, 0, err
	}
	return d[0], d[1], nil
}

func worker(id, pool string, live bool, scripts ...string) rpc.WorkerInfo {
	hb := rpc.Heartbeat{WorkerID: id, Pool: pool, InFlight: 1, Capacity: 16, StartedAt: time.Unix(1_700_000_000, 0).UTC()}
	for _, s := range scripts {
		hb.Scripts = append(hb.Scripts, rpc.ScriptInfo{Name: s, Versions: []string{"1.0.0"}})
	}
	return rpc.WorkerInfo{Heartbeat: hb, LastSeen: time.Now(), Live: live}
}

func TestStatusSnapshot(t *testing.T) {
	f := newFakeLink()
	f.workers = []rpc.WorkerInfo{worker("w1", "default", true, "echo"), worker("w2", "heavy", true, "browser"), worker("w3", "gone", false, "echo")}
	f.depths = map[string][2]int{"default": {3, 1}, "heavy": {4, 1}, "gone": {100, 0}}
	f.stats = rpc.ClientStats{Calls: 10, Replies: 8, Timeouts: 1, Returns: 1, LateReplies: 2, Reconnects: 1, InFlight: 2}
	stats := new(callStats)
	stats.Record("echo", OutcomeCompleted, time.Millisecond)
	stats.Record("echo", OutcomeCompleted, time.Millisecond)
	stats.Record("echo", "SCRIPT_ERROR", time.Millisecond)
	started := time.Now().Add(-time.Minute)
	src := newStatusSource(f, stats, started, time.Second, []string{"extra"})
	defer src.close()

	st := src.snapshot(context.Background(), time.Second, statusOptions{seriesSeconds: seriesSeconds})
	if st.Status != "ok" || !st.Broker.Connected || st.Broker.Reconnects != 1 {
		t.Errorf("status %q broker %+v", st.Status, st.Broker)
	}
	if st.UptimeSeconds < 59 || st.UptimeSeconds > 120 {
		t.Errorf("uptime = %v", st.UptimeSeconds)
	}
	if st.ActiveWorkers != 2 || len(st.Workers) != 3 {
		t.Errorf("active %d of %d workers, want 2 of 3", st.ActiveWorkers, len(st.Workers))
	}
	if w := st.Workers[0]; w.WorkerID != "w1" || len(w.Scripts) != 1 || w.Scripts[0].Name != "echo" || w.LastHeartbeat.IsZero() {
		t.Errorf("worker 0 = %+v", w)
	}
	// pools: default, the configured one, the live workers' (not the dead one's)
	var pools []string
	for _, q := range st.Queues {
		pools = append(pools, q.Pool)
		if q.Stale || q.AgeMS < 0 || q.Queue != rpc.TaskQueueName(q.Pool) {
			t.Errorf("queue %+v", q)
		}
	}
	if strings.Join(pools, ",") != "default,extra,heavy" {
		t.Errorf("pools = %v", pools)
	}
	if st.QueueLength != 7 {
		t.Errorf("queue_length = %d, want 7", st.QueueLength)
	}
	if st.CompletedTasks != 2 || st.FailedTasks != 1 || st.Calls.Total != 3 {
		t.Errorf("completed %d failed %d total %d", st.CompletedTasks, st.FailedTasks, st.Calls.Total)
	}
	if st.Scripts["echo"].ByOutcome["SCRIPT_ERROR"] != 1 {
		t.Errorf("scripts = %+v", st.Scripts)
	}
	if st.InFlight != 2 || st.RPC.LateReplies != 2 || st.RPC.Returns != 1 {
		t.Errorf("in_flight %d rpc %+v", st.InFlight, st.RPC)
	}
	if st.Series == nil || len(st.Series.Calls) != seriesSeconds {
		t.Errorf("series missing or short")
	}

	f.connected.Store(false)
	st = src.snapshot(context.Background(), 0, statusOptions{})
	if st.Status != "degraded" || st.Series != nil {
		t.Errorf("broker down: status %q, series %v", st.Status, st.Series)
	}
}

func TestQueueCacheNeverBlocksLong(t *testing.T) {
	f := newFakeLink()
	f.depths["default"] = [2]int{5, 2}
	f.block = make(chan struct{})
	q := newQueueCache(f, time.Hour)

	start := time.Now()
	got := q.getAll(context.Background(), []string{"default"}, 50*time.Millisecond)
	if waited := time.Since(start); waited > 2*time.Second {
		t.Fatalf("getAll waited %v for a blocked broker, want about 50ms", waited)
	}
	if got[0].AgeMS != -1 || !got[0].Stale {
		t.Errorf("before any answer: %+v, want age -1 and stale", got[0])
	}
	// a second request does not start a second query
	q.getAll(context.Background(), []string{"default"}, 0)
	if n := f.queries.Load(); n != 1 {
		t.Errorf("%d queries in flight, want 1", n)
	}

	f.mu.Lock()
	close(f.block)
	f.block = nil
	f.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got = q.getAll(context.Background(), []string{"default"}, 100*time.Millisecond)
		if got[0].AgeMS >= 0 || time.Now().After(deadline) {
			break
		}
	}
	if got[0].Messages != 5 || got[0].Consumers != 2 || got[0].Stale {
		t.Errorf("after the answer: %+v", got[0])
	}
	// within the TTL, no new query
	q.getAll(context.Background(), []string{"default"}, time.Second)
	if n := f.queries.Load(); n != 1 {
		t.Errorf("%d queries within the cache period, want 1", n)
	}
	q.close()
}

func TestQueueCacheErrorsAndClose(t *testing.T) {
	f := newFakeLink()
	f.depths["default"] = [2]int{1, 1}
	q := newQueueCache(f, time.Nanosecond) // every call refreshes
	got := q.getAll(context.Background(), []string{"default"}, time.Second)
	if got[0].Messages != 1 || got[0].Error != "" {
		t.Fatalf("first answer %+v", got[0])
	}
	f.mu.Lock()
	f.depthErr = errors.New("queue depth of pool \"default\": broker unavailable")
	f.mu.Unlock()
	got = q.getAll(context.Background(), []string{"default"}, time.Second)
	if got[0].Messages != 1 || !got[0].Stale || !strings.Contains(got[0].Error, "broker unavailable") {
		t.Errorf("after a failure: %+v, want the last value, stale, with the error", got[0])
	}

	// close cancels a query that hangs
	f.mu.Lock()
	f.block = make(chan struct{})
	f.mu.Unlock()
	q.getAll(context.Background(), []string{"default"}, 0)
	done := make(chan struct{})
	go func() { q.close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("close did not stop a hanging query")
	}
	// after close, nothing new starts
	before := f.queries.Load()
	q.getAll(context.Background(), []string{"default"}, 0)
	if f.queries.Load() != before {
		t.Error("a query started after close")
	}
}

// serveHandler calls a caddyhttp handler the way Caddy would, with a
// replacer in the context, and renders a returned error as its status and code.
func serveHandler(h caddyhttp.MiddlewareHandler, user, role string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		repl := caddyhttp.NewTestReplacer(r)
		if user != "" {
			repl.Set("http.auth.user.id", user)
		}
		if u := r.Header.Get("X-Test-User"); u != "" {
			repl.Set("http.auth.user.id", u)
		}
		if role != "" {
			repl.Set("http.auth.user.role", role)
		}
		if ro := r.Header.Get("X-Test-Role"); ro != "" {
			repl.Set("http.auth.user.role", ro)
		}
		r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
		err := h.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil }))
		if err != nil {
			var he caddyhttp.HandlerError
			status := http.StatusInternalServerError
			if errors.As(err, &he) {
				status = he.StatusCode
			}
			code := ""
			if ce, ok := codeOf(err); ok {
				code = ce.Code
			}
			w.Header().Set("X-Code", code)
			w.WriteHeader(status)
		}
	})
}

func TestScrapeStatusServeHTTP(t *testing.T) {
	f := newFakeLink()
	h := &ScrapeStatus{QueueCache: caddy.Duration(time.Second), QueueWait: caddy.Duration(time.Second)}
	h.src = newStatusSource(f, nil, time.Now(), time.Second, nil)
	defer h.Cleanup()
	srv := serveHandler(h, "A", "")

	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/status", nil))
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("GET: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	if rec.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control = %q", rec.Header().Get("Cache-Control"))
	}
	var st StatusResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatalf("body: %v", err)
	}
	if st.Series == nil || st.Status != "ok" {
		t.Errorf("status %q series %v", st.Status, st.Series != nil)
	}
	var raw map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &raw)
	for _, k := range []string{"queue_length", "active_workers", "completed_tasks", "failed_tasks", "uptime_seconds", "cpu_percent", "memory_rss_bytes", "in_flight", "workers", "scripts"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("field %s missing", k)
		}
	}

	rec = httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/status?series=0", nil))
	if strings.Contains(rec.Body.String(), `"series"`) {
		t.Error("?series=0 still has the series")
	}

	rec = httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, "/status", nil))
	if rec.Code != http.StatusOK || rec.Body.Len() != 0 {
		t.Errorf("HEAD: %d with %d bytes", rec.Code, rec.Body.Len())
	}

	rec = httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/status", nil))
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("X-Code") != CodeMethodNotAllowed || rec.Header().Get("Allow") == "" {
		t.Errorf("POST: %d %q", rec.Code, rec.Header().Get("X-Code"))
	}
}

func TestScrapeStatusCaddyfile(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     ScrapeStatus
		err      string
	}{
		{name: "bare", in: `scrape_status`},
		{name: "all", in: "scrape_status {\n queue_cache 2s\n queue_wait 100ms\n pools a b\n}",
			want: ScrapeStatus{QueueCache: caddy.Duration(2 * time.Second), QueueWait: caddy.Duration(100 * time.Millisecond), Pools: []string{"a", "b"}}},
		{name: "argument", in: `scrape_status x`, err: "wrong argument count"},
		{name: "unknown", in: "scrape_status {\n nope\n}", err: "unrecognized subdirective: nope"},
		{name: "duplicate", in: "scrape_status {\n queue_cache 1s\n queue_cache 2s\n}", err: "duplicate subdirective: queue_cache"},
		{name: "bad duration", in: "scrape_status {\n queue_wait soon\n}", err: `bad duration "soon"`},
		{name: "zero", in: "scrape_status {\n queue_cache 0\n}", err: "must be positive"},
		{name: "no pools", in: "scrape_status {\n pools\n}", err: "wrong argument count"},
		{name: "two durations", in: "scrape_status {\n queue_wait 1s 2s\n}", err: "wrong argument count"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h ScrapeStatus
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.QueueCache != tc.want.QueueCache || h.QueueWait != tc.want.QueueWait || strings.Join(h.Pools, ",") != strings.Join(tc.want.Pools, ",") {
				t.Errorf("got %+v, want %+v", h, tc.want)
			}
		})
	}
}

func TestProcSampler(t *testing.T) {
	p := newProcSampler(20 * time.Millisecond)
	if s := p.get(); s.SampledAt != nil && s.NumCPU == 0 {
		t.Errorf("first get = %+v", s)
	}
	deadline := time.Now().Add(5 * time.Second)
	var s ProcessStatus
	for time.Now().Before(deadline) {
		if s = p.get(); s.SampledAt != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s.SampledAt == nil || s.RSSBytes == 0 || s.Goroutines == 0 || s.HeapBytes == 0 || s.OpenFiles == 0 {
		t.Errorf("sample = %+v", s)
	}
	if err := p.Destruct(); err != nil {
		t.Fatal(err)
	}
	// a sampler never started stops at once
	if err := newProcSampler(time.Second).Destruct(); err != nil {
		t.Fatal(err)
	}
}

package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/scrapegate/scrapegate/rpc"
)

func init() {
	caddy.RegisterModule(new(ScrapeStatus))
}

// Defaults of the status handlers.
const (
	// DefaultQueueCache is how long a queue length read from the broker is reused.
	DefaultQueueCache = time.Second
	// DefaultQueueWait is the longest a request waits for a fresh queue length.
	DefaultQueueWait = 250 * time.Millisecond
	// queueQueryTimeout bounds one passive declare in the background.
	queueQueryTimeout = 5 * time.Second
	// maxPools caps the pools a status reports (pool names come from heartbeats).
	maxPools = 64
)

// ScrapeStatus is the `scrape_status` handler (`http.handlers.scrape_status`):
// GET answers the gateway's status as JSON (StatusResponse): queue length
// from the broker, workers from their heartbeats, call counts by script and
// outcome, calls in flight, uptime, the process's CPU and memory, and a
// per-second series of calls and latency over the last ten minutes.
//
// It is terminal and expects an authentication handler before it (the
// example Caddyfile puts jwt_auth first). Nothing inside a request blocks
// for long: the queue length comes from a short cache refreshed in the
// background (a request waits at most queue_wait for a fresh one, then
// answers the last known value marked stale), and CPU and memory from a
// sampler that reads them every two seconds.
//
// Query parameters: `series=0` leaves out the time series.
type ScrapeStatus struct {
	// How long a queue length read from the broker is reused before the
	// broker is asked again. Default: 1s.
	QueueCache caddy.Duration `json:"queue_cache,omitempty"`

	// The longest a request waits for a fresh queue length before it
	// answers the last known one (marked stale). Default: 250ms.
	QueueWait caddy.Duration `json:"queue_wait,omitempty"`

	// Worker pools whose queue is always reported, besides "default" and
	// the pools named in live workers' heartbeats.
	Pools []string `json:"pools,omitempty"`

	src    *statusSource
	ctx    caddy.Context
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (*ScrapeStatus) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.scrape_status",
		New: func() caddy.Module { return new(ScrapeStatus) },
	}
}

// Provision loads the scrapegate app and the process sampler; it does no
// network I/O.
func (h *ScrapeStatus) Provision(ctx caddy.Context) error {
	h.ctx = ctx
	h.logger = ctx.Logger()
	if h.QueueCache == 0 {
		h.QueueCache = caddy.Duration(DefaultQueueCache)
	}
	if h.QueueWait == 0 {
		h.QueueWait = caddy.Duration(DefaultQueueWait)
	}
	src, err := provisionStatusSource(ctx, time.Duration(h.QueueCache), h.Pools)
	if err != nil {
		return err
	}
	h.src = src
	return nil
}

// Validate checks the configuration.
func (h *ScrapeStatus) Validate() error {
	if h.QueueCache < 0 {
		return fmt.Errorf("queue_cache: must not be negative")
	}
	if h.QueueWait < 0 {
		return fmt.Errorf("queue_wait: must not be negative")
	}
	return validatePools(h.Pools)
}

// ServeHTTP answers GET and HEAD with the status.
func (h *ScrapeStatus) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return Error(CodeMethodNotAllowed, "use GET", nil)
	}
	withSeries := r.URL.Query().Get("series") != "0"
	st := h.src.snapshot(r.Context(), time.Duration(h.QueueWait), statusOptions{seriesSeconds: seriesIf(withSeries)})
	return writeJSON(w, r, http.StatusOK, st)
}

// Cleanup stops the background queue queries and releases the sampler.
func (h *ScrapeStatus) Cleanup() error {
	if h.src == nil {
		return nil
	}
	return h.src.close()
}

// seriesIf returns the full series length when with is true, else 0.
func seriesIf(with bool) int {
	if with {
		return seriesSeconds
	}
	return 0
}

// validatePools checks configured pool names.
func validatePools(pools []string) error {
	for i, p := range pools {
		if p == "" || strings.ContainsAny(p, " \t\r\n") || len(p) > 200 {
			return fmt.Errorf("pools %d: %q is not a pool name", i, p)
		}
	}
	return nil
}

// writeJSON writes v as the JSON body of a response that must not be cached.
func writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return Error(CodeInternalError, "", fmt.Errorf("encoding response: %v", err))
	}
	b = append(b, '\n')
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json; charset=utf-8")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Content-Length", fmt.Sprint(len(b)))
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return nil
	}
	_, _ = w.Write(b)
	return nil
}

// StatusResponse is the body of GET /status and the data of a "status"
// message on the WebSocket.
type StatusResponse struct {
	// Status is "ok" when the broker link is up, "degraded" otherwise.
	Status string `json:"status"`
	// Timestamp is when this status was taken.
	Timestamp time.Time `json:"timestamp"`
	// StartedAt is when the gateway's broker link was created; it survives
	// config reloads.
	StartedAt time.Time `json:"started_at"`
	// UptimeSeconds is the time since StartedAt.
	UptimeSeconds float64 `json:"uptime_seconds"`

	// QueueLength is the number of tasks waiting in the broker, all pools
	// together (see Queues).
	QueueLength int `json:"queue_length"`
	// ActiveWorkers is the number of live workers (a heartbeat younger than
	// three heartbeat intervals).
	ActiveWorkers int `json:"active_workers"`
	// CompletedTasks and FailedTasks count the calls this gateway answered
	// since it started: completed, and everything else (failed scripts and
	// gateway errors).
	CompletedTasks uint64 `json:"completed_tasks"`
	FailedTasks    uint64 `json:"failed_tasks"`
	// InFlight is the number of calls waiting for their reply now.
	InFlight int64 `json:"in_flight"`
	// CPUPercent and MemoryRSSBytes repeat Process.CPUPercent and
	// Process.RSSBytes.
	CPUPercent     float64 `json:"cpu_percent"`
	MemoryRSSBytes uint64  `json:"memory_rss_bytes"`

	// Broker is the state of the broker link.
	Broker BrokerStatus `json:"broker"`
	// Queues are the task queues, one per worker pool.
	Queues []QueueStatus `json:"queues"`
	// Workers are the workers heard from by heartbeat, live or not.
	Workers []WorkerStatus `json:"workers"`
	// Calls counts the calls by outcome, with their latency.
	Calls CallTotals `json:"calls"`
	// Scripts counts the calls of each script. Calls the gateway refused
	// before any worker saw them are under "_unknown"; scripts beyond the
	// first 256 names under "_other".
	Scripts map[string]ScriptStats `json:"scripts"`
	// RPC are the counters of the broker link's RPC client.
	RPC RPCStatus `json:"rpc"`
	// Process is the gateway process's resource use.
	Process ProcessStatus `json:"process"`
	// WebSocketClients is the number of open status WebSockets.
	WebSocketClients int64 `json:"websocket_clients"`
	// Series is the per-second series of calls and latency, oldest first:
	// the last ten minutes on /status and in the first WebSocket snapshot,
	// the last few seconds in the periodic ones. Absent with ?series=0.
	Series *Series `json:"series,omitempty"`
}

// BrokerStatus is the state of the broker link.
type BrokerStatus struct {
	// Connected is true when the link is up and the topology declared.
	Connected bool `json:"connected"`
	// ConnectionName is the name the broker shows for the connection.
	ConnectionName string `json:"connection_name"`
	// Reconnects counts the times the link was lost since the gateway started.
	Reconnects uint64 `json:"reconnects"`
}

// QueueStatus is one task queue in the broker.
type QueueStatus struct {
	// Pool is the worker pool; Queue the queue's name (scrape.tasks.<pool>).
	Pool  string `json:"pool"`
	Queue string `json:"queue"`
	// Messages is the number of tasks ready in the queue; Consumers the
	// number of consumers (one per worker of the pool).
	Messages  int `json:"messages"`
	Consumers int `json:"consumers"`
	// AgeMS is how old the numbers are, in milliseconds (-1: never read).
	AgeMS int64 `json:"age_ms"`
	// Stale is true when the numbers are older than the cache period
	// (the broker did not answer in time, or is unreachable).
	Stale bool `json:"stale"`
	// Error says why the last query failed, if it did.
	Error string `json:"error,omitempty"`
}

// WorkerStatus is a worker as its last heartbeat describes it.
type WorkerStatus struct {
	WorkerID string `json:"worker_id"`
	Pool     string `json:"pool"`
	// Live is true while its last heartbeat is younger than three heartbeat intervals.
	Live     bool `json:"live"`
	InFlight int  `json:"in_flight"`
	Capacity int  `json:"capacity"`
	// Scripts are the scripts it serves, with their versions.
	Scripts []WorkerScript `json:"scripts"`
	// StartedAt is when the worker started; LastHeartbeat when the gateway
	// last heard from it.
	StartedAt     time.Time `json:"started_at"`
	LastHeartbeat time.Time `json:"last_heartbeat"`
}

// WorkerScript is one script a worker serves.
type WorkerScript struct {
	Name     string   `json:"name"`
	Versions []string `json:"versions"`
}

// RPCStatus are the RPC client's counters since the gateway started.
type RPCStatus struct {
	Calls       uint64 `json:"calls"`
	Replies     uint64 `json:"replies"`
	Timeouts    uint64 `json:"timeouts"`
	Returns     uint64 `json:"returns"`
	LateReplies uint64 `json:"late_replies"`
	Reconnects  uint64 `json:"reconnects"`
	Nacks       uint64 `json:"nacks"`
	Cancels     uint64 `json:"cancels"`
	InFlight    int64  `json:"in_flight"`
}

// linkClient is what the status handlers read from the broker link; an
// *rpc.Client is one, unit tests use fakes.
type linkClient interface {
	Connected() bool
	ConnectionName() string
	Stats() rpc.ClientStats
	Workers() []rpc.WorkerInfo
	QueueDepth(ctx context.Context, pool string) (messages, consumers int, err error)
}

// statusSource builds StatusResponses. Each status handler owns one.
type statusSource struct {
	client    linkClient
	stats     *callStats
	startedAt time.Time
	sampler   *procSampler // nil in unit tests
	queues    *queueCache
	pools     []string
	releaser  func() error // releases the sampler
}

// provisionStatusSource builds the status source of a handler from the
// scrapegate app of ctx.
func provisionStatusSource(ctx caddy.Context, queueCache time.Duration, pools []string) (*statusSource, error) {
	app, err := loadApp(ctx)
	if err != nil {
		return nil, err
	}
	if err := registerMetrics(ctx, app); err != nil {
		return nil, err
	}
	sampler, err := loadSampler()
	if err != nil {
		return nil, fmt.Errorf("loading process sampler: %v", err)
	}
	src := newStatusSource(app.Client(), app.Stats(), app.StartedAt(), queueCache, pools)
	src.sampler = sampler
	src.releaser = releaseSampler
	return src, nil
}

// loadApp returns the scrapegate app of ctx (provisioning it with its
// defaults if the config has none).
func loadApp(ctx caddy.Context) (*App, error) {
	v, err := ctx.App(AppID)
	if err != nil {
		return nil, fmt.Errorf("loading the %s app: %v", AppID, err)
	}
	app, ok := v.(*App)
	if !ok {
		return nil, fmt.Errorf("the %s app is a %T, not *App", AppID, v)
	}
	return app, nil
}

// newStatusSource returns a status source; call close when done.
func newStatusSource(c linkClient, stats *callStats, startedAt time.Time, queueCache time.Duration, pools []string) *statusSource {
	if stats == nil {
		stats = new(callStats)
	}
	return &statusSource{
		client:    c,
		stats:     stats,
		startedAt: startedAt,
		queues:    newQueueCache(c, queueCache),
		pools:     pools,
	}
}

// close stops the queue cache's queries and releases the sampler.
func (s *statusSource) close() error {
	s.queues.close()
	if s.releaser != nil {
		r := s.releaser
		s.releaser = nil
		if err := r(); err != nil {
			return fmt.Errorf("releasing process sampler: %v", err)
		}
	}
	return nil
}

// statusOptions shape a snapshot.
type statusOptions struct {
	// seriesSeconds is how many seconds of the time series to include (0: none).
	seriesSeconds int
}

// snapshot builds the status. It waits at most queueWait (and never past
// ctx) for fresh queue lengths; queueWait 0 never waits.
func (s *statusSource) snapshot(ctx context.Context, queueWait time.Duration, opts statusOptions) StatusResponse {
	t := now().UTC()
	st := StatusResponse{
		Status:    "ok",
		Timestamp: t,
		StartedAt: s.startedAt.UTC(),
	}
	if !s.startedAt.IsZero() {
		st.UptimeSeconds = round2(t.Sub(s.startedAt).Seconds())
	}

	cs := s.client.Stats()
	st.Broker = BrokerStatus{
		Connected:      s.client.Connected(),
		ConnectionName: s.client.ConnectionName(),
		Reconnects:     cs.Reconnects,
	}
	if !st.Broker.Connected {
		st.Status = "degraded"
	}
	st.RPC = RPCStatus{
		Calls: cs.Calls, Replies: cs.Replies, Timeouts: cs.Timeouts, Returns: cs.Returns,
		LateReplies: cs.LateReplies, Reconnects: cs.Reconnects, Nacks: cs.Nacks,
		Cancels: cs.Cancels, InFlight: cs.InFlight,
	}
	st.InFlight = cs.InFlight

	workers := s.client.Workers()
	st.Workers = make([]WorkerStatus, 0, len(workers))
	pools := append([]string{rpc.DefaultPool}, s.pools...)
	for _, w := range workers {
		ws := WorkerStatus{
			WorkerID: w.WorkerID, Pool: w.Pool, Live: w.Live,
			InFlight: w.InFlight, Capacity: w.Capacity,
			Scripts:   make([]WorkerScript, 0, len(w.Scripts)),
			StartedAt: w.StartedAt, LastHeartbeat: w.LastSeen.UTC(),
		}
		for _, sc := range w.Scripts {
			ws.Scripts = append(ws.Scripts, WorkerScript{Name: sc.Name, Versions: nonNil(sc.Versions)})
		}
		st.Workers = append(st.Workers, ws)
		if w.Live {
			st.ActiveWorkers++
			if w.Pool != "" {
				pools = append(pools, w.Pool)
			}
		}
	}
	sort.Strings(pools)
	pools = slices.Compact(pools)
	if len(pools) > maxPools {
		pools = pools[:maxPools]
	}
	st.Queues = s.queues.getAll(ctx, pools, queueWait)
	for _, q := range st.Queues {
		st.QueueLength += q.Messages
	}

	st.Calls, st.Scripts = s.stats.totals()
	st.CompletedTasks, st.FailedTasks = st.Calls.Completed, st.Calls.Failed

	if s.sampler != nil {
		st.Process = s.sampler.get()
	}
	st.CPUPercent, st.MemoryRSSBytes = st.Process.CPUPercent, st.Process.RSSBytes
	st.WebSocketClients = wsClients.Load()

	if opts.seriesSeconds > 0 {
		series := s.stats.series.window(t, opts.seriesSeconds)
		st.Series = &series
	}
	return st
}

// nonNil returns v, or an empty slice for nil (so JSON says [] not null).
func nonNil(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}

// queueCache caches the depth of task queues, read by passive declares in
// background goroutines it owns (stopped by close).
type queueCache struct {
	client linkClient
	ttl    time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	entries map[string]*queueEntry
}

// queueEntry is the cached depth of one pool's queue.
type queueEntry struct {
	messages, consumers int
	err                 error
	at                  time.Time     // of the last successful answer (zero: never)
	triedAt             time.Time     // of the last answer or failure
	refreshing          chan struct{} // non-nil while a query runs; closed when it ends
}

// newQueueCache returns a cache that reuses an answer for ttl.
func newQueueCache(c linkClient, ttl time.Duration) *queueCache {
	ctx, cancel := context.WithCancel(context.Background())
	return &queueCache{client: c, ttl: ttl, ctx: ctx, cancel: cancel, entries: make(map[string]*queueEntry)}
}

// close cancels the queries in flight and waits for their goroutines.
func (q *queueCache) close() {
	q.cancel()
	q.wg.Wait()
}

// getAll returns the depth of each pool's queue, starting a background query
// for each one not fresh, and waiting at most wait (and never past ctx) for
// them.
func (q *queueCache) getAll(ctx context.Context, pools []string, wait time.Duration) []QueueStatus {
	var pending []chan struct{}
	q.mu.Lock()
	t := now()
	for _, p := range pools {
		e := q.entries[p]
		if e == nil {
			e = new(queueEntry)
			q.entries[p] = e
		}
		if !e.triedAt.IsZero() && t.Sub(e.triedAt) < q.ttl {
			continue
		}
		if e.refreshing == nil && q.ctx.Err() == nil {
			e.refreshing = make(chan struct{})
			q.wg.Add(1)
			go q.refresh(p, e)
		}
		if e.refreshing != nil {
			pending = append(pending, e.refreshing)
		}
	}
	q.mu.Unlock()

	if len(pending) > 0 && wait > 0 {
		timer := time.NewTimer(wait)
	waiting:
		for _, ch := range pending {
			select {
			case <-ch:
			case <-timer.C:
				break waiting
			case <-ctx.Done():
				break waiting
			}
		}
		timer.Stop()
	}

	q.mu.Lock()
	defer q.mu.Unlock()
	t = now()
	out := make([]QueueStatus, 0, len(pools))
	for _, p := range pools {
		e := q.entries[p]
		qs := QueueStatus{Pool: p, Queue: rpc.TaskQueueName(p), AgeMS: -1, Stale: true}
		if !e.at.IsZero() {
			age := t.Sub(e.at)
			qs.Messages, qs.Consumers = e.messages, e.consumers
			qs.AgeMS = age.Milliseconds()
			qs.Stale = age >= q.ttl
		}
		if e.err != nil {
			qs.Error = e.err.Error()
		}
		out = append(out, qs)
	}
	return out
}

// refresh queries the broker for one pool and stores the answer.
func (q *queueCache) refresh(pool string, e *queueEntry) {
	defer q.wg.Done()
	ctx, cancel := context.WithTimeout(q.ctx, queueQueryTimeout)
	defer cancel()
	m, c, err := q.client.QueueDepth(ctx, pool)
	q.mu.Lock()
	defer q.mu.Unlock()
	e.triedAt = now()
	if err != nil {
		e.err = err
	} else {
		e.messages, e.consumers, e.err, e.at = m, c, nil, e.triedAt
	}
	close(e.refreshing)
	e.refreshing = nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*ScrapeStatus)(nil)
	_ caddy.Validator             = (*ScrapeStatus)(nil)
	_ caddy.CleanerUpper          = (*ScrapeStatus)(nil)
	_ caddyhttp.MiddlewareHandler = (*ScrapeStatus)(nil)
)

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/scrapegate/scrapegate/rpc"
)

// The fault suite (issue 8): concurrent POST /scrape calls against the real
// gateway (the example Caddyfile), real workers and a real RabbitMQ node,
// while faults are injected; every call's outcome is checked against the
// contract afterwards (chaos_report_test.go).
//
//	go test -run TestChaos -v ./e2e                         short profile (make test)
//	SCRAPEGATE_CHAOS=long go test -run TestChaos -v ./e2e   256 calls in flight for 5 minutes (make chaos)
//
// SCRAPEGATE_CHAOS_FAULTS=reload,worker_sigkill (a comma-separated subset of
// the fault names below) runs only those faults: for development only; the
// default runs every fault.

// Fault names, also the rows of the report.
const (
	faultCloseConnections = "close_all_connections"
	faultReload           = "reload"
	faultWorkerKill       = "worker_sigkill"
	faultWorkerTerm       = "worker_sigterm"
	faultBrokerRestart    = "broker_restart"
)

// allFaults is the order of one fault cycle.
var allFaults = []string{faultCloseConnections, faultReload, faultWorkerKill, faultWorkerTerm, faultBrokerRestart}

// Phases that are not faults.
const (
	phaseWarmup = "warmup"
	phaseSteady = "steady"
	phaseCalm   = "calm"
)

// chaosProfile sizes one run of the suite.
type chaosProfile struct {
	Name string
	// Concurrency is the number of calls in flight at once, every kind together.
	Concurrency int
	// Duration is how long the fault cycle repeats; 0 runs it once.
	Duration time.Duration
	// Workers is the number of worker processes (each killed or stopped
	// worker is replaced); WorkerConcurrency is each one's -concurrency.
	Workers, WorkerConcurrency int
	// TimeoutSlots and DisconnectSlots are the clients that make, one after
	// the other, calls that time out on purpose and calls they abandon.
	TimeoutSlots, DisconnectSlots int
	// NormalTimeout is the timeout of ordinary calls, in seconds; their echo
	// sleeps 0..MaxSleepMS.
	NormalTimeout, MaxSleepMS int
	// Reloads is the number of admin-API reloads of one reload fault.
	Reloads int
	// OutageCalls is the number of calls abandoned during each broker outage.
	OutageCalls int
	// BrokerDown is how long the broker stays stopped in a restart.
	BrokerDown time.Duration
	// Warmup and Steady are the load before the baseline and before the first fault.
	Warmup, Steady time.Duration
	// Settle is the load between a fault's recovery and the next fault.
	Settle time.Duration
	// GoroutineSlack is how many goroutines above the baseline the gateway
	// may keep after the run.
	GoroutineSlack int
	// GatewayLogBytes is the room reserved for the gateway's output (its
	// access log: about 1.3 kB a call), see reserveLogs.
	GatewayLogBytes int
}

var chaosProfiles = map[string]chaosProfile{
	"short": {
		Name: "short", Concurrency: 32, Workers: 2, WorkerConcurrency: 32,
		TimeoutSlots: 2, DisconnectSlots: 4, NormalTimeout: 5, MaxSleepMS: 20,
		Reloads: 3, OutageCalls: 4, BrokerDown: time.Second,
		Warmup: 2 * time.Second, Steady: time.Second, Settle: 500 * time.Millisecond,
		GoroutineSlack: 5, GatewayLogBytes: 256 << 20,
	},
	"long": {
		Name: "long", Concurrency: 256, Duration: 5 * time.Minute, Workers: 3, WorkerConcurrency: 64,
		TimeoutSlots: 8, DisconnectSlots: 16, NormalTimeout: 10, MaxSleepMS: 20,
		Reloads: 5, OutageCalls: 8, BrokerDown: 3 * time.Second,
		Warmup: 5 * time.Second, Steady: 5 * time.Second, Settle: 5 * time.Second,
		GoroutineSlack: 5, GatewayLogBytes: 1536 << 20,
	},
}

// Bounds of the contract, with the margins the checks allow.
const (
	// answerSlack: every call ends within its timeout plus this.
	answerSlack = time.Second
	// recoveryBound: after a fault stops, calls succeed again within this.
	recoveryBound = 10 * time.Second
	// drainBound: after the load stops, the queues are empty within this.
	drainBound = 10 * time.Second
	// cancelSlack: a task may still start this long after its caller
	// disconnected (the cancel travels gateway -> broker -> worker).
	cancelSlack = time.Second
	// deadlineSlack: a task may start this long after the gateway's
	// created_at + timeout (the deadline is taken just after created_at).
	deadlineSlack = 250 * time.Millisecond
	// replySlack: a task that completed this long before its caller's
	// deadline must have answered the caller.
	replySlack = time.Second
	// reconnectCancelSlack: a task whose caller left while workers were
	// reconnecting may start on a worker back from it; its cancel,
	// published again on that worker's heartbeat (every second here), must
	// stop it within this.
	reconnectCancelSlack = 3 * time.Second
)

func TestChaos(t *testing.T) {
	name := os.Getenv("SCRAPEGATE_CHAOS")
	if name == "" {
		name = "short"
	}
	p, ok := chaosProfiles[name]
	if !ok {
		t.Fatalf("SCRAPEGATE_CHAOS=%q: want short or long", name)
	}
	if dir := os.Getenv("SCRAPEGATE_CHAOS_REANALYSE"); dir != "" {
		// development: run the checks again over a dumped run
		rep, err := loadDump(dir, p)
		if err != nil {
			t.Fatalf("loading %s: %v", dir, err)
		}
		rep.analyse()
		t.Logf("checks over %s again:\n%s", dir, rep.table())
		for _, v := range rep.violationLines(40) {
			t.Error(v)
		}
		return
	}
	faults := allFaults
	if sel := os.Getenv("SCRAPEGATE_CHAOS_FAULTS"); sel != "" {
		faults = nil
		for _, f := range strings.Split(sel, ",") {
			f = strings.TrimSpace(f)
			if !containsString(allFaults, f) {
				t.Fatalf("SCRAPEGATE_CHAOS_FAULTS: unknown fault %q (want some of %v)", f, allFaults)
			}
			faults = append(faults, f)
		}
		t.Logf("development run: faults %v only", faults)
	}

	// Registered first, so it runs after every process's cleanup: the
	// verdict ends the test's output, where CI shows it.
	var verdict []string
	t.Cleanup(func() {
		if t.Failed() && len(verdict) > 0 {
			t.Logf("fault suite verdict:\n%s", strings.Join(verdict, "\n"))
		}
	})

	testStart := time.Now()
	b := startChaosBroker(t)
	t.Logf("%v: broker node %s up", time.Since(testStart).Round(time.Millisecond), b.Node)
	port := FreePort(t)
	g := StartGateway(t, chaosCaddyfile(t), map[string]string{
		// ":PORT" is the example Caddyfile's plain-HTTP form (a host
		// name, even 127.0.0.1, turns on automatic HTTPS)
		"SCRAPEGATE_ADDR": fmt.Sprintf(":%d", port),
		"AMQP_URL":        b.URL,
		// The suite checks the RPC contract, not the limits: they must not
		// answer 429 to its load. (rate_limit keeps a ring of `events`
		// timestamps per client: a 1 s window keeps it small.)
		"RATE_LIMIT_REQUESTS":      "100000",
		"RATE_LIMIT_WINDOW":        "1s",
		"MAX_IN_FLIGHT_PER_CLIENT": "100000",
	})
	g.URL = fmt.Sprintf("http://127.0.0.1:%d", port)
	reserveLogs(g.p, p.GatewayLogBytes)
	g.WaitHealthy(t, 60*time.Second)

	ws := &workerSet{t: t, url: b.URL, args: []string{"-concurrency", strconv.Itoa(p.WorkerConcurrency)}}
	for range p.Workers {
		ws.start()
	}
	ev := startEventRecorder(t, b.URL)
	l := newChaosLoad(t, g, p)
	if err := l.waitServing(90 * time.Second); err != nil {
		t.Fatalf("gateway never answered an echo: %v\n%s", err, tail(g.Logs(), 60))
	}

	// warm up, then take the baseline with nothing in flight
	l.setPhase(phaseWarmup)
	warm := l.run()
	time.Sleep(p.Warmup)
	warm.stop()
	// idle keep-alive connections hold gateway goroutines: close them
	// before each sample
	l.client.CloseIdleConnections()
	time.Sleep(500 * time.Millisecond)
	base, err := sampleLeaks(g, b)
	if err != nil {
		t.Fatalf("taking the baseline: %v", err)
	}
	t.Logf("%v: baseline: %s", time.Since(testStart).Round(time.Millisecond), base)

	rep := &chaosReport{Profile: p, Start: time.Now()}
	l.setPhase(phaseSteady)
	load := l.run()
	time.Sleep(p.Steady)

	fi := &faultInjector{t: t, p: p, b: b, g: g, ws: ws, l: l, ev: ev}
	for cycle := 0; ; cycle++ {
		for _, f := range faults {
			rep.Faults = append(rep.Faults, fi.inject(f))
		}
		if p.Duration == 0 || time.Since(rep.Start) >= p.Duration {
			break
		}
		t.Logf("cycle %d done after %v: %d calls", cycle+1, time.Since(rep.Start).Round(time.Second), l.count())
	}

	// the faults have stopped: the system must recover by itself
	calm := faultRecord{Name: phaseCalm, Start: time.Now(), End: time.Now()}
	l.setPhase(phaseCalm)
	l.waitRecovered(calm.End, recoveryBound+5*time.Second)
	time.Sleep(2 * time.Second)
	load.stop()
	rep.LoadEnd = time.Now()
	rep.Faults = append(rep.Faults, calm)

	t.Logf("%v: load stopped after %d calls", time.Since(testStart).Round(time.Millisecond), l.count())
	rep.Drain = waitDrained(b, drainBound+10*time.Second)
	l.client.CloseIdleConnections()
	rep.Baseline = base
	rep.End, rep.LeakErr = waitNoLeaks(g, b, base, p.GoroutineSlack, 20*time.Second)
	// events of the last calls may still be on their way
	waitEventsQuiet(ev, 2*time.Second)

	rep.Calls = l.records()
	rep.GatewayLog = g.Logs()
	rep.Events = ev.Events()
	rep.WorkerExits = ws.exits()
	rep.analyse()

	table := rep.table()
	t.Logf("fault suite, %s profile:\n%s", p.Name, table)
	artifacts := filepath.Join(repoRoot(), "test-artifacts")
	if os.MkdirAll(artifacts, 0o755) == nil {
		_ = os.WriteFile(filepath.Join(artifacts, "chaos-"+p.Name+".md"), []byte(table), 0o644)
	}
	for _, v := range rep.violationLines(40) {
		t.Error(v)
	}
	verdict = append(verdict, rep.violationLines(5)...)
	if t.Failed() || os.Getenv("SCRAPEGATE_CHAOS_DUMP") == "1" {
		dir := filepath.Join(artifacts, "chaos-"+p.Name+"-"+rep.Start.Format("20060102-150405"))
		if err := rep.dump(dir, g, ws); err != nil {
			t.Logf("writing the run's records: %v", err)
		} else {
			t.Logf("the run's logs, events and calls are in %s", dir)
		}
	}
	if rep.LeakErr != nil && rep.End.Goroutines > rep.Baseline.Goroutines+p.GoroutineSlack {
		if dump, err := adminGet(g, "/debug/pprof/goroutine?debug=1"); err == nil {
			t.Logf("gateway goroutines after the run:\n%s", dump)
		}
	}
}

// reserveLogs makes room for n bytes of a child process's output in the
// buffer that captures it. Without it the buffer copies itself each time it
// grows; a copy of hundreds of MB takes seconds, the pipe from the process
// fills meanwhile, and the gateway blocks on its next log write: a stall of
// the whole gateway that the suite would blame on it.
func reserveLogs(p *proc, n int) {
	p.logs.mu.Lock()
	p.logs.buf.Grow(n)
	p.logs.mu.Unlock()
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// callKind is what a call of the load is for.
type callKind int

const (
	// kindNormal: an echo that sleeps a little; it must succeed unless a fault hits it.
	kindNormal callKind = iota
	// kindTimeout: an echo that sleeps longer than its timeout.
	kindTimeout
	// kindDisconnect: an echo its client abandons mid-call.
	kindDisconnect
)

func (k callKind) String() string {
	return [...]string{"normal", "timeout", "disconnect"}[k]
}

// callRecord is one POST /scrape of the load and what came back.
type callRecord struct {
	Kind    callKind
	Phase   string
	Client  string
	Nonce   string
	Timeout time.Duration
	SleepMS int
	Sent    time.Time
	Ended   time.Time
	// Disconnected is when the client abandoned the call (kindDisconnect
	// that got no answer first).
	Disconnected time.Time

	Status    int
	Code      string // error code, or the worker's error code of a 200 failed
	BodyState string // "completed" or "failed" of a 200
	PayloadOK bool   // the 200's data is this call's own parameters
	RequestID string
	// Stamp is the 200's created_at or the error body's timestamp (the
	// gateway's clock: this machine's).
	Stamp   time.Time
	Err     string // transport error
	BadBody string
	// Retried are the attempts whose connection failed before any
	// answer; the call was sent again after each.
	Retried []failedAttempt
}

// maxAttempts bounds the attempts of a call whose connection fails before
// an answer (a retry may land on another connection a reload is closing).
const maxAttempts = 3

// failedAttempt is an attempt of a call whose connection failed before any
// answer came back.
type failedAttempt struct {
	// Attempt is its callHeader value.
	Attempt string
	Err     string
	At      time.Time
}

// chaosLoad makes the calls and records them.
type chaosLoad struct {
	t      *testing.T
	g      *Gateway
	p      chaosProfile
	client *http.Client
	// freshClient opens a connection per request (retries).
	freshClient *http.Client

	tokenMu sync.Mutex
	tokens  map[string]string

	phase atomic.Pointer[string]
	seq   atomic.Int64

	mu    sync.Mutex
	calls []*callRecord
}

// normalClients are the client ids of ordinary calls.
var normalClients = []string{"chaos-a", "chaos-b", "chaos-c"}

func newChaosLoad(t *testing.T, g *Gateway, p chaosProfile) *chaosLoad {
	l := &chaosLoad{
		t: t, g: g, p: p,
		client: &http.Client{Transport: &http.Transport{
			MaxIdleConns:        4 * p.Concurrency,
			MaxIdleConnsPerHost: 4 * p.Concurrency,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		}},
		freshClient: &http.Client{Transport: &http.Transport{DisableKeepAlives: true, DisableCompression: true}},
		tokens:      make(map[string]string),
	}
	clients := append([]string{"chaos-timeout"}, normalClients...)
	for i := range p.DisconnectSlots {
		clients = append(clients, disconnectClient(i))
	}
	for _, c := range clients {
		l.tokens[c] = MintToken(t, GatewaySecret, c, 24*time.Hour, nil)
	}
	l.setPhase(phaseWarmup)
	t.Cleanup(l.client.CloseIdleConnections)
	return l
}

func disconnectClient(slot int) string { return "chaos-dc-" + strconv.Itoa(slot) }

func (l *chaosLoad) setPhase(name string) { l.phase.Store(&name) }

func (l *chaosLoad) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.calls)
}

// records returns the finished calls.
func (l *chaosLoad) records() []*callRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*callRecord(nil), l.calls...)
}

// waitServing makes single echo calls until one succeeds: the gateway has
// heard the workers' heartbeats.
func (l *chaosLoad) waitServing(within time.Duration) error {
	deadline := time.Now().Add(within)
	var last string
	for time.Now().Before(deadline) {
		r := l.call(nil, kindNormal, normalClients[0], 0, 5*time.Second, 0)
		if r.Status == http.StatusOK && r.PayloadOK {
			return nil
		}
		last = fmt.Sprintf("status %d code %s err %s", r.Status, r.Code, r.Err)
		time.Sleep(200 * time.Millisecond)
	}
	return errors.New(last)
}

// outageCalls starts n calls, each from a client id of its own, whose
// tasks run for 10 s (timeout 20 s). abandon disconnects them all; wait
// waits until they are recorded. The clients ids are returned, to find
// their tasks' events.
func (l *chaosLoad) outageCalls(n int) (clients []string, abandon func(), wait func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		client := fmt.Sprintf("chaos-outage-%d", l.seq.Add(1))
		token := MintToken(l.t, GatewaySecret, client, time.Hour, nil)
		l.tokenMu.Lock()
		l.tokens[client] = token
		l.tokenMu.Unlock()
		clients = append(clients, client)
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.record(l.call(done, kindDisconnect, client, 10000, 20*time.Second, 0))
		}()
	}
	return clients, sync.OnceFunc(func() { close(done) }), wg.Wait
}

// loadRun is one running load; stop ends it and waits for its calls.
type loadRun struct {
	done chan struct{}
	wg   sync.WaitGroup
}

func (r *loadRun) stop() {
	close(r.done)
	r.wg.Wait()
}

// run starts the load: Concurrency callers in all, of which TimeoutSlots
// make calls that time out and DisconnectSlots calls they abandon.
func (l *chaosLoad) run() *loadRun {
	r := &loadRun{done: make(chan struct{})}
	normal := l.p.Concurrency - l.p.TimeoutSlots - l.p.DisconnectSlots
	for i := range normal {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			client := normalClients[i%len(normalClients)]
			for !r.stopped() {
				rec := l.record(l.call(nil, kindNormal, client,
					mrand.IntN(l.p.MaxSleepMS+1), time.Duration(l.p.NormalTimeout)*time.Second, 0))
				if rec.Status != http.StatusOK {
					// a client backs off a little after an error
					r.sleep(time.Duration(20+mrand.IntN(30)) * time.Millisecond)
				}
			}
		}()
	}
	for range l.p.TimeoutSlots {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			for !r.stopped() {
				l.record(l.call(nil, kindTimeout, "chaos-timeout",
					1500+mrand.IntN(1000), time.Second, 0))
				r.sleep(time.Duration(mrand.IntN(200)) * time.Millisecond)
			}
		}()
	}
	for i := range l.p.DisconnectSlots {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			// one call at a time per client, spaced past the previous one's
			// deadline, so that the task events of this client id map to
			// its calls by time (chaos_report_test.go)
			const timeout = 3 * time.Second
			r.sleep(time.Duration(mrand.IntN(1000)) * time.Millisecond)
			for !r.stopped() {
				start := time.Now()
				after := time.Duration(20+mrand.IntN(400)) * time.Millisecond
				l.record(l.call(nil, kindDisconnect, disconnectClient(i),
					200+mrand.IntN(800), timeout, after))
				r.sleep(time.Until(start.Add(timeout + 1500*time.Millisecond)))
			}
		}()
	}
	return r
}

func (r *loadRun) stopped() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

func (r *loadRun) sleep(d time.Duration) {
	if d <= 0 {
		return
	}
	select {
	case <-r.done:
	case <-time.After(d):
	}
}

func (l *chaosLoad) record(r *callRecord) *callRecord {
	l.mu.Lock()
	l.calls = append(l.calls, r)
	l.mu.Unlock()
	return r
}

// call makes one POST /scrape of an echo that sleeps sleepMS with timeout;
// disconnectAfter > 0 abandons it after that long. A call that gets no
// answer within its timeout + 5 s is abandoned too (and is a violation).
func (l *chaosLoad) call(abandon <-chan struct{}, kind callKind, client string, sleepMS int, timeout, disconnectAfter time.Duration) *callRecord {
	n := l.seq.Add(1)
	rec := &callRecord{
		Kind: kind, Phase: *l.phase.Load(), Client: client, Timeout: timeout, SleepMS: sleepMS,
		Nonce: fmt.Sprintf("%d-%s", n, randHex(6)),
	}
	body, _ := json.Marshal(map[string]any{
		"script_name": "echo",
		"parameters":  map[string]any{"nonce": rec.Nonce, "sleep_ms": sleepMS},
		"timeout":     int(timeout / time.Second),
	})
	ctx, cancel := context.WithTimeout(context.Background(), timeout+5*time.Second)
	defer cancel()
	var abandoned atomic.Int64 // unix nanos of the disconnect
	if disconnectAfter > 0 {
		tm := time.AfterFunc(disconnectAfter, func() {
			abandoned.Store(time.Now().UnixNano())
			cancel()
		})
		defer tm.Stop()
	}
	if abandon != nil {
		go func() {
			select {
			case <-abandon:
				abandoned.Store(time.Now().UnixNano())
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, l.g.URL+"/scrape", bytes.NewReader(body))
	l.tokenMu.Lock()
	token := l.tokens[client]
	l.tokenMu.Unlock()
	req.Header = callHeaders(token)
	rec.Sent = time.Now()
	var resp *http.Response
	var err error
	fresh := false
	for attempt := 1; ; attempt++ {
		name := rec.Nonce + "/" + strconv.Itoa(attempt)
		var unanswered bool
		resp, unanswered, err = l.do(req, name, fresh)
		if err == nil || !unanswered || abandoned.Load() != 0 || attempt == maxAttempts {
			break
		}
		// The connection failed before a byte of an answer came back. The
		// report checks, from the gateway's access log, that the gateway
		// never read this attempt (and that it happened during a reload):
		// then it is safe to send again, as an HTTP/1.1 client does for an
		// idempotent request.
		// The retry goes out on a new connection a moment later: the other
		// idle connections of the pool may be closing with the same reload.
		rec.Retried = append(rec.Retried, failedAttempt{Attempt: name, Err: err.Error(), At: time.Now()})
		time.Sleep(time.Duration(10+mrand.IntN(40)) * time.Millisecond)
		req, _ = http.NewRequestWithContext(ctx, http.MethodPost, l.g.URL+"/scrape", bytes.NewReader(body))
		req.Header = callHeaders(token)
		fresh = true
	}
	var raw []byte
	if err == nil {
		raw, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		rec.Status = resp.StatusCode
	}
	rec.Ended = time.Now()
	if err != nil {
		if ns := abandoned.Load(); ns != 0 {
			rec.Status = 0
			rec.Disconnected = time.Unix(0, ns)
			return rec
		}
		rec.Status = 0
		rec.Err = err.Error()
		return rec
	}
	rec.parseBody(raw)
	return rec
}

// callHeader names each attempt of a call ("<nonce>/<attempt>"); the
// gateway's access log shows it for every request the gateway read.
const callHeader = "X-Chaos-Call"

func callHeaders(token string) http.Header {
	return http.Header{
		"Content-Type":    {"application/json"},
		"Accept-Language": {"en"},
		"Authorization":   {"Bearer " + token},
	}
}

// do sends one attempt of a call; unanswered reports that it failed before
// any byte of an answer came back.
// With fresh, it goes out on a new connection.
func (l *chaosLoad) do(req *http.Request, attempt string, fresh bool) (resp *http.Response, unanswered bool, err error) {
	req.Header.Set(callHeader, attempt)
	var answered atomic.Bool
	trace := &httptrace.ClientTrace{GotFirstResponseByte: func() { answered.Store(true) }}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	c := l.client
	if fresh {
		c = l.freshClient
	}
	resp, err = c.Do(req)
	return resp, err != nil && !answered.Load(), err
}

// parseBody reads the answer's body into the record.
func (r *callRecord) parseBody(raw []byte) {
	if r.Status == http.StatusOK {
		var ok struct {
			RequestID string          `json:"request_id"`
			Status    string          `json:"status"`
			Data      json.RawMessage `json:"data"`
			ErrorCode *string         `json:"error_code"`
			CreatedAt time.Time       `json:"created_at"`
		}
		if err := json.Unmarshal(raw, &ok); err != nil {
			r.BadBody = string(raw)
			return
		}
		r.RequestID, r.BodyState, r.Stamp = ok.RequestID, ok.Status, ok.CreatedAt
		if ok.ErrorCode != nil {
			r.Code = *ok.ErrorCode
		}
		var data struct {
			Nonce   string `json:"nonce"`
			SleepMS int    `json:"sleep_ms"`
		}
		if json.Unmarshal(ok.Data, &data) == nil && data.Nonce == r.Nonce && data.SleepMS == r.SleepMS {
			r.PayloadOK = true
		}
		return
	}
	var eb struct {
		Code      string    `json:"code"`
		RequestID string    `json:"request_id"`
		Timestamp time.Time `json:"timestamp"`
	}
	if err := json.Unmarshal(raw, &eb); err != nil || eb.Code == "" {
		r.BadBody = string(raw)
		return
	}
	r.Code, r.RequestID, r.Stamp = eb.Code, eb.RequestID, eb.Timestamp
}

// ok reports whether the call returned its own payload.
func (r *callRecord) ok() bool {
	return r.Status == http.StatusOK && r.BodyState == "completed" && r.PayloadOK
}

// waitRecovered waits until the ordinary calls sent after from succeed
// again (see recoveryOf), at most within.
func (l *chaosLoad) waitRecovered(from time.Time, within time.Duration) {
	deadline := time.Now().Add(within)
	need := min(20, l.p.Concurrency)
	for time.Now().Before(deadline) {
		lastFail, successes := from, 0
		for _, r := range l.records() {
			if r.Kind != kindNormal || r.Sent.Before(from) {
				continue
			}
			if !r.ok() && r.Sent.After(lastFail) {
				lastFail = r.Sent
			}
		}
		for _, r := range l.records() {
			if r.Kind == kindNormal && r.Sent.After(lastFail) && r.ok() {
				successes++
			}
		}
		if successes >= need && time.Since(lastFail) > time.Second {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// workerSet keeps the worker processes of the run.
type workerSet struct {
	t    *testing.T
	url  string
	args []string

	mu    sync.Mutex
	all   []*Worker
	alive []*Worker
	gone  []workerExit
}

// workerExit is how a stopped or killed worker ended.
type workerExit struct {
	Fault    string
	Pid      int
	Took     time.Duration
	Exited   bool
	ExitErr  string
	Graceful bool
}

func (s *workerSet) start() *Worker {
	w := StartWorker(s.t, s.url, s.args...)
	s.mu.Lock()
	s.alive = append(s.alive, w)
	s.all = append(s.all, w)
	s.mu.Unlock()
	return w
}

// oldest removes and returns the longest-running worker.
func (s *workerSet) oldest() *Worker {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.alive[0]
	s.alive = s.alive[1:]
	return w
}

func (s *workerSet) exited(e workerExit) {
	s.mu.Lock()
	s.gone = append(s.gone, e)
	s.mu.Unlock()
}

func (s *workerSet) exits() []workerExit {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]workerExit(nil), s.gone...)
}

// faultRecord is one injected fault.
type faultRecord struct {
	Name  string
	Start time.Time
	// End is when the fault stopped: the broker is back, the new worker
	// is ready, the last reload returned.
	End  time.Time
	Err  string
	Note string
	// Pid is the worker a worker fault killed or stopped.
	Pid int
	// StoppedAt is when the broker had stopped (broker restart), and
	// OutageClients the clients that abandoned their calls then.
	StoppedAt     time.Time
	OutageClients []string
	// Recovery is computed by the report.
	Recovery  time.Duration
	Recovered bool
}

// faultInjector injects the faults, one at a time, under the load.
type faultInjector struct {
	t  *testing.T
	p  chaosProfile
	b  *chaosBroker
	g  *Gateway
	ws *workerSet
	l  *chaosLoad
	ev *eventRecorder
}

// inject runs fault name, then waits for the system to recover and settle.
func (fi *faultInjector) inject(name string) faultRecord {
	fi.l.setPhase(name)
	f := faultRecord{Name: name, Start: time.Now()}
	var err error
	switch name {
	case faultCloseConnections:
		err = fi.b.CloseAllConnections()
	case faultReload:
		before, _ := sampleLeaks(fi.g, fi.b)
		for i := range fi.p.Reloads {
			if err = reloadGateway(fi.g); err != nil {
				err = fmt.Errorf("reload %d: %w", i+1, err)
				break
			}
			time.Sleep(300 * time.Millisecond)
		}
		// the broker link lives in a UsagePool: a reload keeps it
		after, _ := sampleLeaks(fi.g, fi.b)
		if err == nil && !slices.Equal(before.GatewayConnPIDs, after.GatewayConnPIDs) {
			err = fmt.Errorf("the gateway's broker connections changed across the reloads: %v before, %v after",
				before.GatewayConnPIDs, after.GatewayConnPIDs)
		}
		if err == nil {
			f.Note = fmt.Sprintf("%d reloads; the gateway kept its broker connection %v", fi.p.Reloads, after.GatewayConnPIDs)
		}
	case faultWorkerKill:
		w := fi.ws.oldest()
		w.Signal(syscall.SIGKILL)
		e := workerExit{Fault: name, Pid: w.Pid()}
		e.Exited = w.Wait(10 * time.Second)
		e.Took = time.Since(f.Start)
		fi.ws.exited(e)
		fi.ws.start()
		f.Pid = e.Pid
	case faultWorkerTerm:
		w := fi.ws.oldest()
		w.Signal(syscall.SIGTERM)
		e := workerExit{Fault: name, Pid: w.Pid(), Graceful: true}
		// the worker's grace period is 30 s; its echo tasks take < 3 s
		e.Exited = w.Wait(40 * time.Second)
		e.Took = time.Since(f.Start)
		if e.Exited && w.p.waited != nil {
			e.ExitErr = w.p.waited.Error()
		}
		fi.ws.exited(e)
		fi.ws.start()
		f.Pid = e.Pid
		f.Note = fmt.Sprintf("exited %v after SIGTERM", e.Took.Round(time.Millisecond))
	case faultBrokerRestart:
		// Calls whose tasks run when the broker stops and whose clients
		// leave while it is down: their task.cancel cannot be published
		// then, yet their tasks must not run again after the restart.
		clients, abandon, wait := fi.l.outageCalls(fi.p.OutageCalls)
		fi.waitStarted(clients, 5*time.Second)
		if err = fi.b.StopApp(); err == nil {
			f.StoppedAt = time.Now()
			abandon()
			time.Sleep(fi.p.BrokerDown)
			err = fi.b.StartApp()
		}
		abandon()
		wait()
		f.OutageClients = clients
	}
	f.End = time.Now()
	if err != nil {
		f.Err = err.Error()
		fi.t.Logf("fault %s: %v", name, err)
	}
	fi.l.waitRecovered(f.End, recoveryBound+5*time.Second)
	time.Sleep(fi.p.Settle)
	return f
}

// waitStarted waits until the tasks of clients have started, at most
// within, and returns how many did.
func (fi *faultInjector) waitStarted(clients []string, within time.Duration) int {
	deadline := time.Now().Add(within)
	for {
		n := 0
		for _, e := range fi.ev.Events() {
			if e.Type == rpc.EventStarted && containsString(clients, e.ClientID) {
				n++
			}
		}
		if n >= len(clients) || time.Now().After(deadline) {
			return n
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// chaosCaddyfile writes the example Caddyfile without its log_skip, and
// returns its path: the suite reads from the access log which attempts of
// a call the gateway read (see callHeader), so /scrape must be in it.
func chaosCaddyfile(t *testing.T) string {
	b, err := os.ReadFile(filepath.Join(repoRoot(), "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(line) != "log_skip" {
			out = append(out, line)
		}
	}
	if len(out) == strings.Count(string(b), "\n")+1 {
		t.Fatal("the example Caddyfile has no log_skip line to drop")
	}
	name := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(name, []byte(strings.Join(out, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

// reloadGateway posts the gateway's Caddyfile to the admin API's /load, as
// `caddy reload` does (forced: the config is the same each time).
func reloadGateway(g *Gateway) error {
	body, err := os.ReadFile(g.Caddyfile)
	if err != nil {
		return err
	}
	req, _ := http.NewRequest(http.MethodPost, g.AdminURL+"/load", bytes.NewReader(body))
	req.Header.Set("Content-Type", "text/caddyfile")
	req.Header.Set("Cache-Control", "must-revalidate")
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %s", resp.Status, b)
	}
	return nil
}

// adminGet returns the body of GET path on the gateway's admin API.
func adminGet(g *Gateway, path string) (string, error) {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(g.AdminURL + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return string(b), nil
}

// leakSample is what leak checks compare: the gateway's goroutines and the
// broker's connections and channels, by owner.
type leakSample struct {
	Goroutines                    int
	GatewayConns, GatewayChannels int
	WorkerConns, WorkerChannels   int
	OtherConns                    int
	GatewayConnPIDs               []string
}

func (s leakSample) String() string {
	return fmt.Sprintf("gateway goroutines %d; broker: gateway %d connections %d channels, workers %d connections %d channels, other %d connections",
		s.Goroutines, s.GatewayConns, s.GatewayChannels, s.WorkerConns, s.WorkerChannels, s.OtherConns)
}

// sampleLeaks measures a leakSample.
func sampleLeaks(g *Gateway, b *chaosBroker) (leakSample, error) {
	var s leakSample
	dump, err := adminGet(g, "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return s, fmt.Errorf("reading the gateway's goroutines: %w", err)
	}
	first, _, _ := strings.Cut(dump, "\n")
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(first, "goroutine profile: total")))
	if err != nil {
		return s, fmt.Errorf("parsing %q: %v", first, err)
	}
	s.Goroutines = n
	conns, err := b.Connections()
	if err != nil {
		return s, err
	}
	for _, c := range conns {
		switch {
		case c.Name == eventsConnectionName:
		case strings.HasPrefix(c.Name, "scrapegate-gateway"):
			s.GatewayConns++
			s.GatewayChannels += c.Channels
			s.GatewayConnPIDs = append(s.GatewayConnPIDs, c.PID)
		case strings.HasPrefix(c.Name, "scrapegate-worker"):
			s.WorkerConns++
			s.WorkerChannels += c.Channels
		default:
			s.OtherConns++
		}
	}
	return s, nil
}

// waitNoLeaks waits until the gateway's goroutines are back to the baseline
// (plus slack) and the broker's connections and channels are back to it
// exactly; it returns the last sample and, on timeout, what differs.
func waitNoLeaks(g *Gateway, b *chaosBroker, base leakSample, slack int, within time.Duration) (leakSample, error) {
	deadline := time.Now().Add(within)
	for {
		s, err := sampleLeaks(g, b)
		if err == nil {
			err = s.leakFrom(base, slack)
		}
		if err == nil || time.Now().After(deadline) {
			return s, err
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// leakFrom says how s exceeds the baseline, or nil.
func (s leakSample) leakFrom(base leakSample, slack int) error {
	var diffs []string
	if s.Goroutines > base.Goroutines+slack {
		diffs = append(diffs, fmt.Sprintf("gateway goroutines %d, baseline %d (+%d allowed)", s.Goroutines, base.Goroutines, slack))
	}
	pairs := []struct {
		what      string
		now, then int
	}{
		{"gateway connections", s.GatewayConns, base.GatewayConns},
		{"gateway channels", s.GatewayChannels, base.GatewayChannels},
		{"worker connections", s.WorkerConns, base.WorkerConns},
		{"worker channels", s.WorkerChannels, base.WorkerChannels},
		{"other connections", s.OtherConns, base.OtherConns},
	}
	for _, p := range pairs {
		if p.now != p.then {
			diffs = append(diffs, fmt.Sprintf("%s %d, baseline %d", p.what, p.now, p.then))
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	return errors.New(strings.Join(diffs, "; "))
}

// drainResult is how long the queues took to empty after the load stopped.
type drainResult struct {
	Took    time.Duration
	Drained bool
	Left    []brokerQueue
	Err     string
}

// waitDrained waits until no queue of the vhost holds a message.
func waitDrained(b *chaosBroker, within time.Duration) drainResult {
	start := time.Now()
	for {
		qs, err := b.Queues()
		var left []brokerQueue
		for _, q := range qs {
			if q.Messages > 0 {
				left = append(left, q)
			}
		}
		if err == nil && len(left) == 0 {
			return drainResult{Took: time.Since(start), Drained: true}
		}
		if time.Since(start) > within {
			r := drainResult{Took: time.Since(start), Left: left}
			if err != nil {
				r.Err = err.Error()
			}
			return r
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// waitEventsQuiet waits until no event arrived for quiet.
func waitEventsQuiet(ev *eventRecorder, quiet time.Duration) {
	last, since := ev.Count(), time.Now()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		if n := ev.Count(); n != last {
			last, since = n, time.Now()
		} else if time.Since(since) >= quiet {
			return
		}
	}
}

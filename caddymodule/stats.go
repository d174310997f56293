package caddymodule

import (
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// OutcomeCompleted is the outcome of a call whose script ran and completed.
// Every other outcome ("failed": the script ran and failed, or a catalogue code
// of the gateway) counts as a failure in the totals and the time series.
const OutcomeCompleted = "completed"

// Pseudo script names under which callStats files calls whose script name
// must not become a key of its tables (and a label of its metrics).
const (
	// scriptUnknown files the calls the gateway refused before a worker
	// queue saw them (UNKNOWN_SCRIPT, VALIDATION_ERROR, ...): their names
	// are whatever the clients typed.
	scriptUnknown = "_unknown"
	// scriptOther files the calls of scripts beyond maxTrackedScripts.
	scriptOther = "_other"
	// scriptNone files calls that had no script name.
	scriptNone = "_none"
)

// maxTrackedScripts caps the distinct script names callStats keeps, so that
// clients cannot grow its tables (and the metrics' label sets) without bound.
const maxTrackedScripts = 256

// seriesSeconds is how many whole seconds of history the time series keeps.
const seriesSeconds = 600

// seriesSlots is the size of the series ring: the kept seconds, the second
// being filled, and one spare so a late writer never lands in a kept slot.
const seriesSlots = seriesSeconds + 2

// now is the clock of callStats; tests replace it.
var now = time.Now

// callStats counts the gateway's calls by script and outcome, with their
// latency, and keeps a per-second time series of the last ten minutes. It
// is shared by every handler of one broker link and kept across config
// reloads (it lives in the pooled link). The status and metrics handlers
// and the WebSocket snapshots read it.
//
// Its zero value is ready to use. Record is on the hot path of every call:
// it takes no lock in the steady state (a sync.Map lookup and a few atomic
// adds); only the first call of a new script/outcome pair and the first call
// of each second take a mutex.
type callStats struct {
	cells   sync.Map     // cellKey -> *histogram
	scripts sync.Map     // script -> struct{}: the tracked names
	nscript atomic.Int64 // len(scripts)
	newMu   sync.Mutex   // serialises the creation of cells
	series  timeSeries
}

// cellKey names one cell of callStats.
type cellKey struct{ script, outcome string }

// Record counts one call of script that ended with outcome (a catalogue code,
// or "completed"/"failed", as scrape_rpc's {http.scrape_rpc.outcome}) after d.
func (s *callStats) Record(script, outcome string, d time.Duration) {
	s.RecordAt(now(), script, outcome, d)
}

// RecordAt is Record for a call that ended at t.
func (s *callStats) RecordAt(t time.Time, script, outcome string, d time.Duration) {
	s.cell(script, outcome).observe(d)
	s.series.record(t.Unix(), outcome == OutcomeCompleted, d)
}

// cell returns the histogram of a script and outcome, creating it on first use.
func (s *callStats) cell(script, outcome string) *histogram {
	script = trustedScript(script, outcome)
	if v, ok := s.cells.Load(cellKey{script, outcome}); ok {
		return v.(*histogram)
	}
	return s.newCell(script, outcome)
}

// trustedScript returns the name to file a call under: the pseudo name
// scriptUnknown when the gateway refused the request before any worker queue
// saw it (its script name is whatever the client typed), scriptNone for no
// name, the name itself otherwise.
func trustedScript(script, outcome string) string {
	switch outcome {
	case CodeUnknownScript, CodeValidationError, CodeMalformedJSON, CodeBodyTooLarge,
		CodeUnsupportedMediaType, CodeUnauthorized, CodeMethodNotAllowed:
		return scriptUnknown
	}
	if script == "" {
		return scriptNone
	}
	return script
}

// newCell is the slow path of cell: past maxTrackedScripts distinct names, a
// new name is filed under scriptOther.
func (s *callStats) newCell(script, outcome string) *histogram {
	s.newMu.Lock()
	defer s.newMu.Unlock()
	if script != scriptUnknown && script != scriptNone {
		if _, ok := s.scripts.Load(script); !ok {
			if s.nscript.Load() >= maxTrackedScripts {
				script = scriptOther
			} else {
				s.scripts.Store(script, struct{}{})
				s.nscript.Add(1)
			}
		}
	}
	key := cellKey{script, outcome}
	if v, ok := s.cells.Load(key); ok {
		return v.(*histogram)
	}
	h := new(histogram)
	s.cells.Store(key, h)
	return h
}

// cellStat is one cell of callStats, copied.
type cellStat struct {
	Script, Outcome string
	Hist            histSnapshot
}

// cellsSnapshot returns every cell, sorted by script and outcome.
func (s *callStats) cellsSnapshot() []cellStat {
	var out []cellStat
	s.cells.Range(func(k, v any) bool {
		key := k.(cellKey)
		out = append(out, cellStat{Script: key.script, Outcome: key.outcome, Hist: v.(*histogram).snapshot()})
		return true
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].Script != out[j].Script {
			return out[i].Script < out[j].Script
		}
		return out[i].Outcome < out[j].Outcome
	})
	return out
}

// CallTotals are the counts of calls, all scripts together.
type CallTotals struct {
	// Total is every call the gateway answered.
	Total uint64 `json:"total"`
	// Completed counts the calls whose script ran and completed.
	Completed uint64 `json:"completed"`
	// Failed counts every other call: failed scripts and gateway errors.
	Failed uint64 `json:"failed"`
	// ByOutcome counts the calls by outcome: "completed", "failed" (the
	// script ran and failed), or the gateway's error code (TIMEOUT,
	// NO_WORKERS, ...).
	ByOutcome map[string]uint64 `json:"by_outcome"`
	// Latency summarises how long the calls took.
	Latency LatencySummary `json:"latency_ms"`
}

// ScriptStats are the counts and latency of one script's calls.
type ScriptStats struct {
	CallTotals
}

// LatencySummary summarises a latency distribution in milliseconds.
// Percentiles are interpolated inside logarithmic buckets (about 20% wide).
type LatencySummary struct {
	Avg float64 `json:"avg"`
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// summarize returns the counts of a set of cells.
func summarize(cells []cellStat) CallTotals {
	t := CallTotals{ByOutcome: make(map[string]uint64)}
	var all histSnapshot
	for _, c := range cells {
		n := c.Hist.Count
		t.Total += n
		if c.Outcome == OutcomeCompleted {
			t.Completed += n
		} else {
			t.Failed += n
		}
		t.ByOutcome[c.Outcome] += n
		all.add(&c.Hist)
	}
	t.Latency = all.summary()
	return t
}

// totals returns the counts of all calls and of each script.
func (s *callStats) totals() (CallTotals, map[string]ScriptStats) {
	cells := s.cellsSnapshot()
	byScript := make(map[string][]cellStat)
	for _, c := range cells {
		byScript[c.Script] = append(byScript[c.Script], c)
	}
	scripts := make(map[string]ScriptStats, len(byScript))
	for name, cs := range byScript {
		scripts[name] = ScriptStats{summarize(cs)}
	}
	return summarize(cells), scripts
}

// Latency histogram buckets: bucket i holds durations up to bucketBounds[i]
// (2^(i/2) microseconds, so two buckets per octave from 1 µs to about 50
// minutes); the last bucket holds everything longer.
const numBuckets = 64

var bucketBounds = func() [numBuckets - 1]time.Duration {
	var b [numBuckets - 1]time.Duration
	for i := range b {
		b[i] = time.Duration(math.Round(1000 * math.Pow(2, float64(i)/2)))
	}
	return b
}()

// bucketOf returns the bucket of d.
func bucketOf(d time.Duration) int {
	return sort.Search(len(bucketBounds), func(i int) bool { return bucketBounds[i] >= d })
}

// bucketRange returns the lower and upper bound of bucket i; the last
// bucket's upper bound is its lower bound doubled (its real content is
// capped by the observed maximum).
func bucketRange(i int) (lo, hi time.Duration) {
	if i > 0 {
		lo = bucketBounds[i-1]
	}
	if i < len(bucketBounds) {
		return lo, bucketBounds[i]
	}
	return lo, 2 * lo
}

// histogram is a lock-free latency histogram.
type histogram struct {
	counts [numBuckets]atomic.Uint64
	count  atomic.Uint64
	sum    atomic.Int64 // nanoseconds
	max    atomic.Int64 // nanoseconds
}

// observe adds one duration.
func (h *histogram) observe(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(d)].Add(1)
	h.count.Add(1)
	h.sum.Add(int64(d))
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

// reset zeroes h (only safe when no one observes at the same time; the time
// series tolerates the rare miscount of a writer racing a reset).
func (h *histogram) reset() {
	for i := range h.counts {
		h.counts[i].Store(0)
	}
	h.count.Store(0)
	h.sum.Store(0)
	h.max.Store(0)
}

// snapshot copies h.
func (h *histogram) snapshot() histSnapshot {
	var s histSnapshot
	for i := range h.counts {
		s.Counts[i] = h.counts[i].Load()
		s.Count += s.Counts[i]
	}
	s.Sum = time.Duration(h.sum.Load())
	s.Max = time.Duration(h.max.Load())
	return s
}

// histSnapshot is a copy of a histogram. Count is the sum of Counts.
type histSnapshot struct {
	Counts [numBuckets]uint64
	Count  uint64
	Sum    time.Duration
	Max    time.Duration
}

// add merges o into s.
func (s *histSnapshot) add(o *histSnapshot) {
	for i := range s.Counts {
		s.Counts[i] += o.Counts[i]
	}
	s.Count += o.Count
	s.Sum += o.Sum
	s.Max = max(s.Max, o.Max)
}

// quantile estimates the q-quantile (0 < q <= 1), interpolating linearly
// inside its bucket and capping it at the observed maximum.
func (s *histSnapshot) quantile(q float64) time.Duration {
	if s.Count == 0 {
		return 0
	}
	rank := q * float64(s.Count)
	var cum float64
	for i, c := range s.Counts {
		if c == 0 {
			continue
		}
		if cum+float64(c) >= rank {
			lo, hi := bucketRange(i)
			frac := (rank - cum) / float64(c)
			v := lo + time.Duration(frac*float64(hi-lo))
			return min(v, s.Max)
		}
		cum += float64(c)
	}
	return s.Max
}

// mean returns the average duration.
func (s *histSnapshot) mean() time.Duration {
	if s.Count == 0 {
		return 0
	}
	return s.Sum / time.Duration(s.Count)
}

// summary returns the latency summary of s in milliseconds.
func (s *histSnapshot) summary() LatencySummary {
	return LatencySummary{
		Avg: ms(s.mean()),
		P50: ms(s.quantile(0.50)),
		P90: ms(s.quantile(0.90)),
		P99: ms(s.quantile(0.99)),
		Max: ms(s.Max),
	}
}

// ms converts d to milliseconds rounded to the microsecond.
func ms(d time.Duration) float64 {
	return math.Round(float64(d)/1e3) / 1e3
}

// timeSeries is a ring of per-second counters: calls, failures and a
// latency histogram for each of the last seriesSeconds seconds.
type timeSeries struct {
	mu    sync.Mutex // serialises the reset of a slot for a new second
	slots [seriesSlots]seriesSlot
}

// seriesSlot is one second of the ring.
type seriesSlot struct {
	sec    atomic.Int64 // the unix second the slot holds
	failed atomic.Uint64
	hist   histogram // count = calls
}

// record counts one call that ended in the unix second sec.
func (ts *timeSeries) record(sec int64, ok bool, d time.Duration) {
	sl := &ts.slots[sec%seriesSlots]
	if got := sl.sec.Load(); got != sec {
		if got > sec || !ts.roll(sl, sec) {
			return // a call so late its second is gone: drop it
		}
	}
	sl.hist.observe(d)
	if !ok {
		sl.failed.Add(1)
	}
}

// roll resets sl for sec; it reports false when sl already holds a later second.
func (ts *timeSeries) roll(sl *seriesSlot, sec int64) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	switch got := sl.sec.Load(); {
	case got == sec:
		return true
	case got > sec:
		return false
	}
	sl.hist.reset()
	sl.failed.Store(0)
	sl.sec.Store(sec)
	return true
}

// Series is a per-second time series of the gateway's calls, in columns:
// element i of every slice is the second Start+i. Seconds with no calls are
// zeros.
type Series struct {
	// Start is the unix time (seconds) of the first element.
	Start int64 `json:"start"`
	// Interval is the width of one element in seconds (always 1).
	Interval int `json:"interval_seconds"`
	// Calls is the number of calls that ended in each second (calls/s).
	Calls []uint64 `json:"calls"`
	// Failed is how many of them did not complete.
	Failed []uint64 `json:"failed"`
	// LatencyAvg, LatencyP50 and LatencyP99 are the calls' latency in
	// milliseconds (0 when there were no calls).
	LatencyAvg []float64 `json:"latency_avg_ms"`
	LatencyP50 []float64 `json:"latency_p50_ms"`
	LatencyP99 []float64 `json:"latency_p99_ms"`
}

// window returns the last n whole seconds before the second of t (the
// current, still filling second excluded); n is capped at seriesSeconds.
func (ts *timeSeries) window(t time.Time, n int) Series {
	n = min(max(n, 0), seriesSeconds)
	end := t.Unix() // exclusive
	s := Series{
		Start:      end - int64(n),
		Interval:   1,
		Calls:      make([]uint64, n),
		Failed:     make([]uint64, n),
		LatencyAvg: make([]float64, n),
		LatencyP50: make([]float64, n),
		LatencyP99: make([]float64, n),
	}
	for i := range n {
		sec := s.Start + int64(i)
		sl := &ts.slots[sec%seriesSlots]
		if sl.sec.Load() != sec {
			continue
		}
		h := sl.hist.snapshot()
		if sl.sec.Load() != sec || h.Count == 0 {
			continue // rolled over while read, or empty
		}
		s.Calls[i] = h.Count
		s.Failed[i] = min(sl.failed.Load(), h.Count)
		s.LatencyAvg[i] = ms(h.mean())
		s.LatencyP50[i] = ms(h.quantile(0.50))
		s.LatencyP99[i] = ms(h.quantile(0.99))
	}
	return s
}

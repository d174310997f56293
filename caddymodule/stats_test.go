package caddymodule

import (
	"fmt"
	"math"
	"sync"
	"testing"
	"time"
)

func TestCallStatsCounts(t *testing.T) {
	var s callStats // the zero value is ready
	for range 3 {
		s.Record("echo", OutcomeCompleted, 2*time.Millisecond)
	}
	s.Record("echo", "SCRIPT_ERROR", 5*time.Millisecond)
	s.Record("html", CodeTimeout, time.Second)

	total, scripts := s.totals()
	if total.Total != 5 || total.Completed != 3 || total.Failed != 2 {
		t.Fatalf("totals = %+v, want 5 total, 3 completed, 2 failed", total)
	}
	if got := total.ByOutcome["SCRIPT_ERROR"]; got != 1 {
		t.Errorf("by_outcome[SCRIPT_ERROR] = %d, want 1", got)
	}
	echo := scripts["echo"]
	if echo.Total != 4 || echo.Completed != 3 || echo.Failed != 1 {
		t.Errorf("echo = %+v", echo.CallTotals)
	}
	if echo.Latency.Max != 5 {
		t.Errorf("echo max latency = %v ms, want 5", echo.Latency.Max)
	}
	if got := echo.Latency.Avg; math.Abs(got-2.75) > 0.001 {
		t.Errorf("echo avg latency = %v ms, want 2.75", got)
	}
	if html := scripts["html"]; html.Total != 1 || html.ByOutcome[CodeTimeout] != 1 {
		t.Errorf("html = %+v", html.CallTotals)
	}
}

func TestCallStatsUntrustedNames(t *testing.T) {
	var s callStats
	for i := range 1000 {
		s.Record(fmt.Sprintf("typo-%d", i), CodeUnknownScript, time.Millisecond)
		s.Record(fmt.Sprintf("bad name %d", i), CodeValidationError, time.Millisecond)
	}
	s.Record("", CodeBrokerUnavailable, time.Millisecond)
	_, scripts := s.totals()
	if len(scripts) != 2 {
		t.Fatalf("scripts = %v, want only %s and %s", keys(scripts), scriptUnknown, scriptNone)
	}
	if got := scripts[scriptUnknown].Total; got != 2000 {
		t.Errorf("%s total = %d, want 2000", scriptUnknown, got)
	}
	if got := scripts[scriptNone].Total; got != 1 {
		t.Errorf("%s total = %d, want 1", scriptNone, got)
	}
}

func TestCallStatsScriptCap(t *testing.T) {
	var s callStats
	for i := range maxTrackedScripts + 50 {
		s.Record(fmt.Sprintf("s%03d", i), OutcomeCompleted, time.Millisecond)
	}
	s.Record("s000", OutcomeCompleted, time.Millisecond) // tracked before the cap
	_, scripts := s.totals()
	if len(scripts) != maxTrackedScripts+1 {
		t.Fatalf("%d scripts, want %d tracked + %s", len(scripts), maxTrackedScripts, scriptOther)
	}
	if got := scripts[scriptOther].Total; got != 50 {
		t.Errorf("%s total = %d, want 50", scriptOther, got)
	}
	if got := scripts["s000"].Total; got != 2 {
		t.Errorf("s000 total = %d, want 2", got)
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.observe(time.Duration(i) * time.Millisecond)
	}
	s := h.snapshot()
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.9, 900 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {1, time.Second}} {
		got := s.quantile(tc.q)
		if rel := math.Abs(float64(got-tc.want)) / float64(tc.want); rel > 0.2 {
			t.Errorf("quantile(%v) = %v, want %v ±20%%", tc.q, got, tc.want)
		}
	}
	if s.Max != time.Second || s.Count != 1000 {
		t.Errorf("max %v count %d", s.Max, s.Count)
	}
	if got := s.mean(); got != 500500*time.Microsecond {
		t.Errorf("mean = %v", got)
	}
	var empty histSnapshot
	if empty.quantile(0.5) != 0 || empty.mean() != 0 {
		t.Error("empty histogram has a non-zero quantile or mean")
	}
}

func TestBucketsCoverRange(t *testing.T) {
	for _, d := range []time.Duration{0, time.Nanosecond, time.Microsecond, 1500 * time.Microsecond, time.Hour, 1000 * time.Hour} {
		i := bucketOf(d)
		lo, hi := bucketRange(i)
		if i < 0 || i >= numBuckets {
			t.Fatalf("bucketOf(%v) = %d out of range", d, i)
		}
		if i < numBuckets-1 && (d > hi || (i > 0 && d <= lo)) {
			t.Errorf("bucketOf(%v) = %d covering (%v, %v]", d, i, lo, hi)
		}
	}
}

func TestTimeSeriesWindow(t *testing.T) {
	var s callStats
	base := time.Unix(1_700_000_000, 0)
	// 5 calls in second 0 (one failed), 2 in second 2, one in the current second
	for range 4 {
		s.RecordAt(base, "echo", OutcomeCompleted, 10*time.Millisecond)
	}
	s.RecordAt(base.Add(500*time.Millisecond), "echo", CodeTimeout, 30*time.Millisecond)
	s.RecordAt(base.Add(2*time.Second), "echo", OutcomeCompleted, 4*time.Millisecond)
	s.RecordAt(base.Add(2*time.Second), "echo", OutcomeCompleted, 4*time.Millisecond)
	s.RecordAt(base.Add(3*time.Second), "echo", OutcomeCompleted, time.Millisecond)

	w := s.series.window(base.Add(3*time.Second+100*time.Millisecond), 4)
	if w.Start != base.Unix()-1 || w.Interval != 1 {
		t.Fatalf("start %d interval %d", w.Start, w.Interval)
	}
	wantCalls := []uint64{0, 5, 0, 2}
	for i, c := range wantCalls {
		if w.Calls[i] != c {
			t.Fatalf("calls = %v, want %v (the current second left out)", w.Calls, wantCalls)
		}
	}
	if w.Failed[1] != 1 || w.Failed[3] != 0 {
		t.Errorf("failed = %v", w.Failed)
	}
	if w.LatencyAvg[1] != 14 {
		t.Errorf("avg latency of second 1 = %v, want 14", w.LatencyAvg[1])
	}
	if w.LatencyP99[1] < 20 || w.LatencyP99[1] > 30 {
		t.Errorf("p99 latency of second 1 = %v, want about 30", w.LatencyP99[1])
	}

	// ten minutes later the ring has wrapped: the old seconds are gone, and a
	// new call in a reused slot starts from zero
	later := base.Add(seriesSlots * time.Second)
	s.RecordAt(later, "echo", OutcomeCompleted, time.Millisecond)
	w = s.series.window(later.Add(time.Second), seriesSeconds)
	var sum uint64
	for _, c := range w.Calls {
		sum += c
	}
	// the window holds base+3 (1 call) and the new second, whose slot held
	// base's 5 calls before
	if sum != 2 || w.Calls[len(w.Calls)-1] != 1 {
		t.Errorf("after wrapping: %d calls, last second %d; want 2 and 1", sum, w.Calls[len(w.Calls)-1])
	}
	// a call for a second the ring no longer holds is dropped
	s.RecordAt(base, "echo", OutcomeCompleted, time.Millisecond)
	w = s.series.window(later.Add(time.Second), seriesSeconds)
	if w.Calls[len(w.Calls)-1] != 1 {
		t.Errorf("a stale call landed in the current window")
	}
	if n := len(s.series.window(later, 10_000).Calls); n != seriesSeconds {
		t.Errorf("window capped at %d, want %d", n, seriesSeconds)
	}
}

func TestCallStatsConcurrent(t *testing.T) {
	var s callStats
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				outcome := OutcomeCompleted
				if i%10 == 0 {
					outcome = "SCRIPT_ERROR"
				}
				s.Record(fmt.Sprintf("s%d", g%3), outcome, time.Duration(i)*time.Microsecond)
			}
		}()
	}
	done := make(chan struct{})
	go func() { // readers race the writers
		defer close(done)
		for range 50 {
			s.totals()
			s.series.window(time.Now(), seriesSeconds)
		}
	}()
	wg.Wait()
	<-done
	total, _ := s.totals()
	if total.Total != 16000 || total.Failed != 1600 {
		t.Errorf("totals = %d total, %d failed; want 16000, 1600", total.Total, total.Failed)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// BenchmarkCallStatsRecord measures the hot path of every call.
func BenchmarkCallStatsRecord(b *testing.B) {
	var s callStats
	scripts := []string{"echo", "html_extract", "json_api"}
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			s.Record(scripts[i%3], OutcomeCompleted, time.Duration(i%5000)*time.Microsecond)
			i++
		}
	})
}

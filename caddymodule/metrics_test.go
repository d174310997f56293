package caddymodule

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddyserver/caddy/v2"

	"github.com/scrapegate/scrapegate/rpc"
)

// byName indexes metric families by name (generic, so that the test does
// not import prometheus/client_model, an indirect dependency).
func byName[F interface{ GetName() string }](mfs []F) map[string]F {
	out := make(map[string]F)
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func TestGatewayCollector(t *testing.T) {
	stats := new(callStats)
	for range 3 {
		stats.Record("echo", OutcomeCompleted, 3*time.Millisecond)
	}
	stats.Record("echo", CodeTimeout, 2*time.Second)
	stats.Record("typo", CodeUnknownScript, time.Millisecond)
	link := newFakeLink()
	link.workers = []rpc.WorkerInfo{worker("w1", "default", true), worker("w2", "default", false)}
	link.stats = rpc.ClientStats{Calls: 5, Replies: 4, Timeouts: 1, Returns: 1, LateReplies: 2, Reconnects: 3, InFlight: 7}

	reg := prometheus.NewPedanticRegistry()
	c := &gatewayCollector{stats: func() *callStats { return stats }, client: func() linkClient { return link }}
	if err := registerCollector(reg, c); err != nil {
		t.Fatal(err)
	}
	// a second registration (another handler, the same config) is fine
	if err := registerCollector(reg, &gatewayCollector{stats: c.stats, client: c.client}); err != nil {
		t.Fatalf("registering again: %v", err)
	}
	if err := registerCollector(nil, c); err != nil {
		t.Fatal(err)
	}

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gathering: %v", err)
	}
	mf := byName(mfs)
	calls := map[string]float64{}
	for _, m := range mf["scrapegate_calls_total"].GetMetric() {
		var script, outcome string
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "script":
				script = l.GetValue()
			case "outcome":
				outcome = l.GetValue()
			}
		}
		calls[script+"/"+outcome] = m.GetCounter().GetValue()
	}
	if calls["echo/completed"] != 3 || calls["echo/TIMEOUT"] != 1 || calls["_unknown/UNKNOWN_SCRIPT"] != 1 || len(calls) != 3 {
		t.Errorf("calls = %v", calls)
	}

	found := false
	for _, m := range mf["scrapegate_call_duration_seconds"].GetMetric() {
		if m.GetLabel()[0].GetValue() != "echo" {
			continue
		}
		found = true
		echo := m.GetHistogram()
		if echo.GetSampleCount() != 4 {
			t.Fatalf("echo histogram = %v", echo)
		}
		if s := echo.GetSampleSum(); s < 2.009 || s > 2.0091 {
			t.Errorf("echo sum = %v s, want 2.009", s)
		}
		var prev uint64
		for _, b := range echo.GetBucket() {
			if b.GetCumulativeCount() < prev {
				t.Fatalf("buckets not cumulative: %v", echo.GetBucket())
			}
			prev = b.GetCumulativeCount()
			switch le := b.GetUpperBound(); {
			case le < 0.003 && b.GetCumulativeCount() != 0,
				le >= 0.0041 && le < 2 && b.GetCumulativeCount() != 3,
				le >= 2.1 && b.GetCumulativeCount() != 4:
				t.Errorf("bucket le=%v holds %d", le, b.GetCumulativeCount())
			}
		}
	}
	if !found {
		t.Fatal("no echo histogram")
	}

	for name, want := range map[string]float64{
		"scrapegate_calls_in_flight":           7,
		"scrapegate_broker_connected":          1,
		"scrapegate_workers_live":              1,
		"scrapegate_rpc_late_replies_total":    2,
		"scrapegate_rpc_returns_total":         1,
		"scrapegate_rpc_reconnects_total":      3,
		"scrapegate_rpc_timeouts_total":        1,
		"scrapegate_websocket_clients":         float64(wsClients.Load()),
		"scrapegate_websocket_evictions_total": float64(wsEvictions.Load()),
	} {
		f := mf[name]
		if f == nil {
			t.Errorf("%s missing", name)
			continue
		}
		m := f.GetMetric()[0]
		got := m.GetGauge().GetValue() + m.GetCounter().GetValue()
		if got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

func TestSamplerPool(t *testing.T) {
	refsBefore, _ := samplers.References(samplerKey)
	a, err := loadSampler()
	if err != nil {
		t.Fatal(err)
	}
	b, err := loadSampler()
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatal("two handlers got two samplers")
	}
	if refs, _ := samplers.References(samplerKey); refs != refsBefore+2 {
		t.Errorf("references %d, want %d", refs, refsBefore+2)
	}
	a.get() // starts it
	for range 2 {
		if err := releaseSampler(); err != nil {
			t.Fatal(err)
		}
	}
	if refs, _ := samplers.References(samplerKey); refs != refsBefore {
		t.Errorf("references %d after release, want %d", refs, refsBefore)
	}
	if refsBefore == 0 {
		select {
		case <-a.done:
		case <-time.After(5 * time.Second):
			t.Error("the sampler's goroutine outlived its last user")
		}
	}
	// a Cleanup without a Provision (Caddy calls it after a failed one) is fine
	for _, c := range []caddy.CleanerUpper{new(WSStatus), new(ScrapeStatus)} {
		if err := c.Cleanup(); err != nil {
			t.Errorf("%T cleanup without provision: %v", c, err)
		}
	}
}

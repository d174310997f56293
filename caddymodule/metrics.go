package caddymodule

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddyserver/caddy/v2"
)

// Process-wide WebSocket counters, read by the metrics and the status.
var (
	// wsClients is the number of open status WebSockets.
	wsClients atomic.Int64
	// wsEvictions counts the WebSockets closed because their client read too slowly.
	wsEvictions atomic.Uint64
)

// metricsNamespace prefixes every metric of scrapegate.
const metricsNamespace = "scrapegate"

// Descriptions of the metrics. The call metrics are read at scrape time from
// the broker link's callStats and rpc client, so the hot path pays nothing
// for them.
var (
	descCalls = prometheus.NewDesc(metricsNamespace+"_calls_total",
		"Calls answered by the gateway, by script and outcome (completed; failed: the script ran and failed; or the gateway's error code).",
		[]string{"script", "outcome"}, nil)
	descCallDuration = prometheus.NewDesc(metricsNamespace+"_call_duration_seconds",
		"Time from the start of a call to its answer (the RPC round trip through the broker and the worker), by script.",
		[]string{"script"}, nil)
	descInFlight = prometheus.NewDesc(metricsNamespace+"_calls_in_flight",
		"Calls waiting for their reply now.", nil, nil)
	descBrokerUp = prometheus.NewDesc(metricsNamespace+"_broker_connected",
		"1 when the broker link is up and the topology declared, 0 otherwise.", nil, nil)
	descWorkersLive = prometheus.NewDesc(metricsNamespace+"_workers_live",
		"Workers whose last heartbeat is younger than three heartbeat intervals.", nil, nil)
	descWSClients = prometheus.NewDesc(metricsNamespace+"_websocket_clients",
		"Open status WebSocket connections.", nil, nil)
	descWSEvictions = prometheus.NewDesc(metricsNamespace+"_websocket_evictions_total",
		"Status WebSocket connections closed because the client read too slowly.", nil, nil)

	descRPC = map[string]*prometheus.Desc{
		"calls":        rpcDesc("calls", "Tasks the RPC client published."),
		"replies":      rpcDesc("replies", "Replies matched to a waiting call."),
		"timeouts":     rpcDesc("timeouts", "Calls that reached their deadline without a reply."),
		"returns":      rpcDesc("returns", "Tasks the broker returned as unroutable (no queue bound for the script)."),
		"late_replies": rpcDesc("late_replies", "Replies for no waiting call (late or duplicate), dropped."),
		"reconnects":   rpcDesc("reconnects", "Times the broker link was lost and re-established."),
		"nacks":        rpcDesc("nacks", "Tasks the broker refused (negative publisher confirm)."),
		"cancels":      rpcDesc("cancels", "task.cancel messages published for calls whose client went away."),
	}
)

// rpcDesc describes one counter of the rpc client.
func rpcDesc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc(metricsNamespace+"_rpc_"+name+"_total", help, nil, nil)
}

// histogramBounds are the upper bounds (seconds) of the exported latency
// histogram: every power of two microseconds from 128 µs to about 36
// minutes, a subset of callStats's buckets.
var histogramBounds = func() (b []struct {
	idx int
	sec float64
}) {
	for i := 14; i < len(bucketBounds); i += 2 {
		b = append(b, struct {
			idx int
			sec float64
		}{i, bucketBounds[i].Seconds()})
	}
	return b
}()

// gatewayCollector exports the metrics of one broker link (that of the
// config whose registry it is registered in) and the process-wide WebSocket
// counters.
type gatewayCollector struct {
	stats  func() *callStats
	client func() linkClient
}

// Describe implements prometheus.Collector.
func (c *gatewayCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCalls, descCallDuration, descInFlight, descBrokerUp, descWorkersLive, descWSClients, descWSEvictions} {
		ch <- d
	}
	for _, d := range descRPC {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *gatewayCollector) Collect(ch chan<- prometheus.Metric) {
	cells := c.stats().cellsSnapshot()
	byScript := make(map[string]*histSnapshot)
	var order []string
	for i := range cells {
		cell := &cells[i]
		ch <- prometheus.MustNewConstMetric(descCalls, prometheus.CounterValue, float64(cell.Hist.Count), cell.Script, cell.Outcome)
		h := byScript[cell.Script]
		if h == nil {
			h = new(histSnapshot)
			byScript[cell.Script] = h
			order = append(order, cell.Script)
		}
		h.add(&cell.Hist)
	}
	for _, script := range order {
		h := byScript[script]
		buckets := make(map[float64]uint64, len(histogramBounds))
		var cum uint64
		next := 0
		for _, hb := range histogramBounds {
			for ; next <= hb.idx; next++ {
				cum += h.Counts[next]
			}
			buckets[hb.sec] = cum
		}
		ch <- prometheus.MustNewConstHistogram(descCallDuration, h.Count, h.Sum.Seconds(), buckets, script)
	}

	cl := c.client()
	st := cl.Stats()
	ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(st.InFlight))
	up := 0.0
	if cl.Connected() {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(descBrokerUp, prometheus.GaugeValue, up)
	live := 0
	for _, w := range cl.Workers() {
		if w.Live {
			live++
		}
	}
	ch <- prometheus.MustNewConstMetric(descWorkersLive, prometheus.GaugeValue, float64(live))
	for name, v := range map[string]uint64{
		"calls": st.Calls, "replies": st.Replies, "timeouts": st.Timeouts, "returns": st.Returns,
		"late_replies": st.LateReplies, "reconnects": st.Reconnects, "nacks": st.Nacks, "cancels": st.Cancels,
	} {
		ch <- prometheus.MustNewConstMetric(descRPC[name], prometheus.CounterValue, float64(v))
	}
	ch <- prometheus.MustNewConstMetric(descWSClients, prometheus.GaugeValue, float64(wsClients.Load()))
	ch <- prometheus.MustNewConstMetric(descWSEvictions, prometheus.CounterValue, float64(wsEvictions.Load()))
}

// registerMetrics registers the metrics of app in the metrics registry of
// ctx (the config's; Caddy's `metrics` handler serves it). Every handler of
// ours calls it; the first registration in a config wins and the others are
// no-ops (AlreadyRegisteredError), and each reload registers in its new
// registry, so it is idempotent across reloads.
func registerMetrics(ctx caddy.Context, app *App) error {
	return registerCollector(ctx.GetMetricsRegistry(), &gatewayCollector{
		stats:  app.Stats,
		client: func() linkClient { return app.Client() },
	})
}

// registerCollector registers c in reg, treating an earlier registration of
// the same metrics as success.
func registerCollector(reg prometheus.Registerer, c prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			return nil
		}
		return fmt.Errorf("registering metrics: %v", err)
	}
	return nil
}

// Interface guards
var _ prometheus.Collector = (*gatewayCollector)(nil)

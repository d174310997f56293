package caddymodule

import (
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(new(ScrapeHealth))
}

// ScrapeHealth is the `scrape_health` handler (`http.handlers.scrape_health`):
// GET (or HEAD) answers 200 when the gateway can serve calls (its broker
// link is up and the topology declared) and 503 otherwise, with a JSON body
// (HealthResponse) that gives the state of each component. Live workers are
// reported but do not decide the status: a gateway with no worker still
// answers calls (NO_WORKERS), and a load balancer should keep sending them.
//
// It is cheap enough to be polled every second: it reads a few atomics and
// the heartbeat registry, and never talks to the broker. It needs no
// authentication and reveals no secrets.
type ScrapeHealth struct {
	client    linkClient
	startedAt time.Time
}

// CaddyModule returns the Caddy module information.
func (*ScrapeHealth) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.scrape_health",
		New: func() caddy.Module { return new(ScrapeHealth) },
	}
}

// Provision loads the scrapegate app; it does no network I/O.
func (h *ScrapeHealth) Provision(ctx caddy.Context) error {
	app, err := loadApp(ctx)
	if err != nil {
		return err
	}
	if err := registerMetrics(ctx, app); err != nil {
		return err
	}
	h.client = app.Client()
	h.startedAt = app.StartedAt()
	return nil
}

// HealthResponse is the body of GET /health.
type HealthResponse struct {
	// Status is "ok" (HTTP 200) when the broker link is up, "unavailable"
	// (HTTP 503) otherwise.
	Status string `json:"status"`
	// Timestamp is when the check ran.
	Timestamp time.Time `json:"timestamp"`
	// Components gives the state of each part: "broker", "gateway", "workers".
	Components map[string]ComponentHealth `json:"components"`
}

// ComponentHealth is the state of one component.
type ComponentHealth struct {
	// Status is "up" or "down" ("none" for workers when no worker is live).
	Status string `json:"status"`
	// Detail says more, for people.
	Detail string `json:"detail,omitempty"`
	// ConnectionName is the broker connection's name (broker only).
	ConnectionName string `json:"connection_name,omitempty"`
	// UptimeSeconds is the gateway's uptime (gateway only).
	UptimeSeconds *float64 `json:"uptime_seconds,omitempty"`
	// Live is the number of live workers (workers only).
	Live *int `json:"live,omitempty"`
}

// ServeHTTP answers the health check.
func (h *ScrapeHealth) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return Error(CodeMethodNotAllowed, "use GET", nil)
	}
	resp, status := h.check()
	return writeJSON(w, r, status, resp)
}

// check returns the health and its HTTP status.
func (h *ScrapeHealth) check() (HealthResponse, int) {
	t := now().UTC()
	resp := HealthResponse{Status: "ok", Timestamp: t, Components: make(map[string]ComponentHealth, 3)}
	status := http.StatusOK

	broker := ComponentHealth{Status: "up", ConnectionName: h.client.ConnectionName()}
	if !h.client.Connected() {
		broker.Status = "down"
		broker.Detail = "the broker link is down; reconnecting"
		resp.Status = "unavailable"
		status = http.StatusServiceUnavailable
	}
	resp.Components["broker"] = broker

	uptime := round2(t.Sub(h.startedAt).Seconds())
	resp.Components["gateway"] = ComponentHealth{Status: "up", UptimeSeconds: &uptime}

	live := 0
	for _, wi := range h.client.Workers() {
		if wi.Live {
			live++
		}
	}
	workers := ComponentHealth{Status: "up", Live: &live}
	if live == 0 {
		workers.Status = "none"
		workers.Detail = "no live worker has sent a heartbeat"
	}
	resp.Components["workers"] = workers
	return resp, status
}

// Interface guards
var (
	_ caddy.Provisioner           = (*ScrapeHealth)(nil)
	_ caddyhttp.MiddlewareHandler = (*ScrapeHealth)(nil)
)

package caddymodule

// Endpoints of the API, the keys of specOptions.Paths and of the
// `scrape_openapi` directive's `path` subdirective.
const (
	EndpointInfo      = "info"
	EndpointHealth    = "health"
	EndpointScrape    = "scrape"
	EndpointWS        = "ws"
	EndpointStatus    = "status"
	EndpointScripts   = "scripts"
	EndpointOpenAPI   = "openapi"
	EndpointDocs      = "docs"
	EndpointDashboard = "dashboard"
	EndpointMetrics   = "metrics"
)

// DefaultPaths are where the example Caddyfile mounts each endpoint.
var DefaultPaths = map[string]string{
	EndpointInfo:      "/",
	EndpointHealth:    "/health",
	EndpointScrape:    "/scrape",
	EndpointWS:        "/ws",
	EndpointStatus:    "/status",
	EndpointScripts:   "/scripts",
	EndpointOpenAPI:   "/openapi.json",
	EndpointDocs:      "/docs",
	EndpointDashboard: "/dashboard",
	EndpointMetrics:   "/metrics",
}

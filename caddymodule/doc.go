// Package caddymodule holds scrapegate's Caddy modules: the app that owns the
// link to RabbitMQ and the HTTP handlers of the scraping API
// (../shared/design/http-api.md).
//
// # Modules and directives
//
//	module ID                      directive / global option   what
//	scrapegate                     scrapegate { ... } (global)  the broker link (rpc.Client), task events, call stats; kept across reloads
//	http.handlers.scrape_rpc       scrape_rpc                   POST /scrape: validate, call a worker, answer synchronously
//	http.handlers.scrape_error     scrape_error                 in handle_errors: every error as the JSON error body, Korean/English
//	http.handlers.scrape_info      scrape_info                  GET /: name, version, status
//	http.handlers.scrape_openapi   scrape_openapi               GET /openapi.json: OpenAPI 3.1 generated from the Go types, the catalogue and the live scripts
//	http.handlers.scrape_scripts   scrape_scripts               GET /scripts: the scripts live workers advertise (behind jwt_auth)
//	http.handlers.scrape_docs      scrape_docs                  GET /docs: Swagger UI (embedded, pinned) with a token field
//	http.handlers.scrape_dashboard scrape_dashboard             GET /dashboard: a live page over ws_status (embedded, no external requests)
//	http.handlers.jwt_auth         jwt_auth                     bearer JWTs / API keys; sets {http.auth.user.id}, 401 UNAUTHORIZED with a reason
//	http.authentication.providers.scrapegate_jwt      (in jwt_auth)  caddyauth provider: JWTs (HMAC, RSA, ECDSA, EdDSA; PEM, JWKS file/URL)
//	http.authentication.providers.scrapegate_api_key  (in jwt_auth)  caddyauth provider: SHA-256-hashed API keys
//	http.handlers.scrape_target    scrape_target                {http.scrape.target_host}: the host of parameters.url, for a per-site rate_limit zone
//	http.handlers.scrape_in_flight scrape_in_flight             429 TOO_MANY_IN_FLIGHT over a client's cap of calls in flight
//	http.handlers.scrape_cors      scrape_cors                  CORS: allowed origins, preflights
//
//	commands: `scrapegate token` (mint an access token), `scrapegate apikey` (a new API key and its hashed config line)
//
// Other engineers' modules of this package (authentication, live status,
// documentation) get the broker link from the app the same way: in their
// Provision, ctx.App("scrapegate").(*App), then Client, Subscribe, Stats and
// StartedAt.
//
// # The app and reloads
//
// The scrapegate app keeps its link (rpc.Client, event fan-out, call stats)
// in a package-level caddy.UsagePool keyed by the broker URL (redacted, plus
// a digest) and the link's options. Provision creates or finds the link
// without any network I/O; Start starts the client's connect loop once per
// link; Cleanup drops the config's reference, and the last one closes the
// link. A config reload through the admin API provisions and starts the new
// config before it cleans up the old one, so the broker connection and the
// calls in flight survive it. A config without the app still works: the
// first handler's ctx.App("scrapegate") provisions it with its defaults.
//
// # Directive order
//
// scrape_rpc registers itself before reverse_proxy, scrape_info and
// scrape_error before respond: after rate_limit and the authentication
// handlers. Plugins cannot order themselves relative to each other, so the
// example Caddyfile states the order of the /scrape chain explicitly:
//
//	order jwt_auth before rate_limit
//	order scrape_target before rate_limit
//	order scrape_in_flight after rate_limit
//	order scrape_rpc after scrape_in_flight
//
// (or wrap the handlers in a route block, which keeps their written order).
//
// # Errors
//
// Handlers return errors (caddyhttp.HandlerError carrying a *CodedError made
// by Error); they never write error bodies. The scrape_error handler, placed
// in handle_errors, renders every error: ours, the 401 of authentication,
// the 429 of rate_limit (RATE_LIMITED, Retry-After kept) and Caddy's own
// 404/405, with the message of the error's code from Catalogue. A 5xx shows
// no cause; scrape_error logs it with the request id.
//
// # Placeholders
//
// scrape_rpc sets {http.scrape_rpc.request_id}, {http.scrape_rpc.client_id},
// {http.scrape_rpc.script}, {http.scrape_rpc.outcome},
// {http.scrape_rpc.error_code}, {http.scrape_rpc.worker_id} and
// {http.scrape_rpc.duration_ms} (see ScrapeRPC). It reads
// {http.request.uuid} (the request id and the task's correlation id) and
// {http.auth.user.id} (the client id; "anonymous" when empty).
package caddymodule

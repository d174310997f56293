package caddymodule

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
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
	caddy.RegisterModule(new(ScrapeOpenAPI))
}

// ScrapeOpenAPI is the http.handlers.scrape_openapi module: GET (or HEAD)
// answers the OpenAPI 3.1 description of the API as JSON. The document is
// generated, not written by hand: its schemas are reflected from the Go
// request, response, error and WebSocket types (their doc comments become
// the descriptions), its errors come from the error catalogue (every code,
// by status, with an example each), and it lists the scripts that live
// workers advertise at the time of the request (names, versions, parameter
// schemas), read from the `scrapegate` app's broker link.
//
// The document is rebuilt only when the scripts change; it carries an ETag,
// so a client that sends If-None-Match gets a 304 while nothing changed,
// and it is sent gzip-compressed to clients that accept it.
// It needs no authentication (mount it where you like); other methods
// fail with 405 METHOD_NOT_ALLOWED.
type ScrapeOpenAPI struct {
	// The title of the document. Default: "scrapegate API".
	Title string `json:"title,omitempty"`

	// The servers the document names, tried by clients such as the /docs
	// page. Default: none, which means the origin the document was fetched
	// from.
	Servers []OpenAPIServer `json:"servers,omitempty"`

	// Where each endpoint is mounted, for deployments that do not use the
	// example Caddyfile's paths: a map from endpoint (info, health, scrape,
	// ws, status, scripts, openapi, docs, dashboard, metrics) to its path.
	// An empty path leaves the endpoint out of the document. Endpoints not
	// named keep their default path (/, /health, /scrape, /ws, /status,
	// /scripts, /openapi.json, /docs, /dashboard, /metrics).
	Paths map[string]string `json:"paths,omitempty"`

	// scripts returns what live workers advertise (the app's rpc client).
	scripts func() []rpc.ScriptInfo
	opts    specOptions

	mu       sync.Mutex
	cacheKey string
	doc      *renderedDoc

	logger *zap.Logger
}

// OpenAPIServer is one server of the document.
type OpenAPIServer struct {
	// The base URL of the API, absolute or relative to the document.
	URL string `json:"url"`
	// What the server is. Optional.
	Description string `json:"description,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (*ScrapeOpenAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.scrape_openapi",
		New: func() caddy.Module { return new(ScrapeOpenAPI) },
	}
}

// Provision gets the scripts source from the `scrapegate` app and prepares
// the document's options. No network I/O.
func (h *ScrapeOpenAPI) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.opts = specOptions{Title: h.Title, Servers: h.Servers, Paths: h.Paths}
	if h.scripts != nil {
		return nil
	}
	src, err := appScripts(ctx)
	if err != nil {
		return err
	}
	h.scripts = src
	return nil
}

// Validate checks the endpoints and paths, and the servers' URLs.
func (h *ScrapeOpenAPI) Validate() error {
	for ep, p := range h.Paths {
		if _, ok := DefaultPaths[ep]; !ok {
			return fmt.Errorf("paths: unknown endpoint %q (known: %s)", ep, strings.Join(endpointNames(), ", "))
		}
		if p != "" && (!strings.HasPrefix(p, "/") || strings.ContainsAny(p, " *?#{}")) {
			return fmt.Errorf("paths: %s: %q is not a plain absolute path", ep, p)
		}
	}
	for i, s := range h.Servers {
		if s.URL == "" {
			return fmt.Errorf("servers %d: empty url", i)
		}
		if _, err := url.Parse(s.URL); err != nil {
			return fmt.Errorf("servers %d: bad url %q: %v", i, s.URL, err)
		}
	}
	return nil
}

// ServeHTTP answers the document.
func (h *ScrapeOpenAPI) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return Error(CodeMethodNotAllowed, fmt.Sprintf("%s is not allowed here; use GET", r.Method), nil)
	}
	doc, err := h.document(r.Context())
	if err != nil {
		return Error(CodeInternalError, "", err)
	}
	body, etag := doc.body, doc.etag
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json; charset=utf-8")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("Vary", "Accept-Encoding")
	if acceptsGzip(r) && r.Header.Get("Range") == "" {
		body, etag = doc.gzipped(), doc.etag[:len(doc.etag)-1]+`-gz"`
		hdr.Set("Content-Encoding", "gzip")
	}
	hdr.Set("ETag", etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	return nil
}

// renderedDoc is one serialised document.
type renderedDoc struct {
	body []byte
	etag string
	// gzipped compresses body once, when first asked for.
	gzipped func() []byte
}

// document returns the serialised document, rebuilding it when the live
// scripts changed since the last request.
func (h *ScrapeOpenAPI) document(ctx context.Context) (*renderedDoc, error) {
	list := describeScripts(h.scripts())
	keyJSON, err := json.Marshal(list)
	if err != nil {
		return nil, fmt.Errorf("encoding scripts list: %v", err)
	}
	sum := sha256.Sum256(keyJSON)
	key := hex.EncodeToString(sum[:])

	h.mu.Lock()
	defer h.mu.Unlock()
	if h.doc != nil && key == h.cacheKey {
		return h.doc, nil
	}
	body, err := renderSpec(ctx, h.opts, list, h.logger)
	if err != nil {
		return nil, err
	}
	bsum := sha256.Sum256(body)
	h.cacheKey = key
	h.doc = &renderedDoc{
		body:    body,
		etag:    `"` + hex.EncodeToString(bsum[:12]) + `"`,
		gzipped: sync.OnceValue(func() []byte { return gzipBytes(body) }),
	}
	return h.doc, nil
}

// renderSpec builds, serialises and checks the document. A document that
// fails validation (a bug: tests keep it valid) is still served, and the
// failure logged.
func renderSpec(ctx context.Context, opts specOptions, scripts []ScriptDescription, logger *zap.Logger) ([]byte, error) {
	doc, err := buildSpec(opts, scripts)
	if err != nil {
		return nil, fmt.Errorf("building the OpenAPI document: %v", err)
	}
	body, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding the OpenAPI document: %v", err)
	}
	if err := validateSpecJSON(ctx, body); err != nil && logger != nil {
		logger.Error("generated OpenAPI document is invalid", zap.Error(err))
	}
	return append(body, '\n'), nil
}

// endpointNames returns the known endpoints, sorted.
func endpointNames() []string {
	names := make([]string, 0, len(DefaultPaths))
	for n := range DefaultPaths {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Interface guards
var (
	_ caddy.Provisioner           = (*ScrapeOpenAPI)(nil)
	_ caddy.Validator             = (*ScrapeOpenAPI)(nil)
	_ caddyhttp.MiddlewareHandler = (*ScrapeOpenAPI)(nil)
)

package caddymodule

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// pageAssets are the files of the /docs and /dashboard pages, served from
// the binary: the pages make no request outside the gateway (see
// assets/README.md for where the third-party files come from).
//
//go:embed assets/docs assets/dashboard
var pageAssets embed.FS

// pageCSP is the Content-Security-Policy of the pages: nothing is loaded
// from anywhere but the gateway; API calls ("try it") may go to the servers
// the API document names.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; font-src 'self' data:; connect-src 'self' http: https: ws: wss:; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// asset is one embedded file, ready to serve.
type asset struct {
	name  string
	ctype string
	body  []byte
	etag  string
	// gzipped compresses body once, when first asked for.
	gzipped func() []byte
}

// site is the set of files of one page: its index template and its assets.
type site struct {
	index  *template.Template
	assets map[string]*asset
}

// sites are built once per process: the files are in the binary.
var (
	docsSite      = sync.OnceValues(func() (*site, error) { return loadSite("assets/docs") })
	dashboardSite = sync.OnceValues(func() (*site, error) { return loadSite("assets/dashboard") })
)

// loadSite reads dir of pageAssets: index.html is the page's template, every
// other file an asset.
func loadSite(dir string) (*site, error) {
	entries, err := fs.ReadDir(pageAssets, dir)
	if err != nil {
		return nil, fmt.Errorf("reading embedded %s: %v", dir, err)
	}
	s := &site{assets: make(map[string]*asset)}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		body, err := fs.ReadFile(pageAssets, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("reading embedded %s: %v", e.Name(), err)
		}
		sum := sha256.Sum256(body)
		a := &asset{name: e.Name(), ctype: contentType(e.Name()), body: body, etag: hex.EncodeToString(sum[:8])}
		a.gzipped = sync.OnceValue(func() []byte { return gzipBytes(body) })
		s.assets[e.Name()] = a
	}
	idx, ok := s.assets["index.html"]
	if !ok {
		return nil, fmt.Errorf("embedded %s has no index.html", dir)
	}
	delete(s.assets, "index.html")
	// The page links its assets as {{index .Asset "name"}}.
	s.index, err = template.New("index.html").Option("missingkey=error").Parse(string(idx.body))
	if err != nil {
		return nil, fmt.Errorf("parsing %s/index.html: %v", dir, err)
	}
	return s, nil
}

// contentType returns the media type of a file by its name.
func contentType(name string) string {
	switch {
	case strings.HasSuffix(name, ".js"):
		return "text/javascript; charset=utf-8"
	case strings.HasSuffix(name, ".css"):
		return "text/css; charset=utf-8"
	case strings.HasSuffix(name, ".html"):
		return "text/html; charset=utf-8"
	case strings.HasSuffix(name, ".svg"):
		return "image/svg+xml"
	case strings.HasSuffix(name, ".txt"), strings.Contains(name, "LICENSE"), strings.Contains(name, "NOTICE"):
		return "text/plain; charset=utf-8"
	}
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// gzipBytes compresses b.
func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

// acceptsGzip reports whether the request accepts a gzip-encoded answer.
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") {
			q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}

// requestPath is the path the client asked for: the original request's,
// before any rewrite or prefix stripping (handle_path) inside Caddy.
func requestPath(r *http.Request) string {
	if orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok && orig.URL != nil {
		return orig.URL.Path
	}
	return r.URL.Path
}

// serve answers a request for the page or one of its assets. Assets are
// matched by the last segment of the path, so the page works wherever it
// is mounted; any other path gets the page, rendered with data plus
// .Asset, the URLs of the assets relative to the request path.
func (s *site) serve(w http.ResponseWriter, r *http.Request, data map[string]any) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return Error(CodeMethodNotAllowed, fmt.Sprintf("%s is not allowed here; use GET", r.Method), nil)
	}
	p := requestPath(r)
	if a, ok := s.assets[path.Base(p)]; ok && strings.Contains(p, "/") {
		s.serveAsset(w, r, a)
		return nil
	}
	// The assets sit "under" the page: /docs -> /docs/x, /docs/ -> /docs/x.
	base := "./"
	if !strings.HasSuffix(p, "/") {
		base = path.Base(p) + "/"
	}
	urls := make(map[string]string, len(s.assets))
	for name, a := range s.assets {
		urls[name] = base + name + "?v=" + a.etag
	}
	page := map[string]any{"Asset": urls}
	for k, v := range data {
		page[k] = v
	}
	var buf bytes.Buffer
	if err := s.index.Execute(&buf, page); err != nil {
		return Error(CodeInternalError, "", fmt.Errorf("rendering page: %v", err))
	}
	hdr := w.Header()
	setPageHeaders(hdr)
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
	return nil
}

// setPageHeaders sets the security headers of the pages and their assets.
func setPageHeaders(hdr http.Header) {
	hdr.Set("Content-Security-Policy", pageCSP)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("X-Frame-Options", "DENY")
}

// serveAsset answers one asset: gzip-encoded when the client accepts it,
// cached for a year when the URL names its version (?v=<etag>, as the page
// links it), revalidated otherwise.
func (s *site) serveAsset(w http.ResponseWriter, r *http.Request, a *asset) {
	hdr := w.Header()
	setPageHeaders(hdr)
	hdr.Set("Content-Type", a.ctype)
	hdr.Set("Vary", "Accept-Encoding")
	etag := `"` + a.etag + `"`
	if r.URL.Query().Get("v") == a.etag {
		hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		hdr.Set("Cache-Control", "no-cache")
	}
	body := a.body
	if acceptsGzip(r) && len(a.body) > 1024 {
		body = a.gzipped()
		hdr.Set("Content-Encoding", "gzip")
		etag = `"` + a.etag + `-gz"`
	}
	hdr.Set("ETag", etag)
	if match := r.Header.Get("If-None-Match"); match != "" && etagMatches(match, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// etagMatches reports whether an If-None-Match header value matches etag.
func etagMatches(header, etag string) bool {
	for _, v := range strings.Split(header, ",") {
		v = strings.TrimPrefix(strings.TrimSpace(v), "W/")
		if v == "*" || v == etag {
			return true
		}
	}
	return false
}

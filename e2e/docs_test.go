package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
)

// startDocsStack starts a gateway with testdata/docs.Caddyfile on a vhost of
// its own, and (when withWorker) one worker; it returns them and the broker
// URL.
func startDocsStack(t *testing.T, withWorker bool) (*Gateway, *Worker, string) {
	t.Helper()
	amqpURL := NewVHost(t)
	g := StartGateway(t, "testdata/docs.Caddyfile", map[string]string{"AMQP_URL": amqpURL})
	var w *Worker
	if withWorker {
		w = StartWorker(t, amqpURL)
	}
	return g, w, amqpURL
}

// docsGet GETs url with headers and returns the status and body.
func docsGet(t *testing.T, url string, headers map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	return resp.StatusCode, resp.Header, b
}

// loadOpenAPI fetches the gateway's /openapi.json and checks that it parses
// (every reference resolved) and validates as OpenAPI 3.
func loadOpenAPI(t *testing.T, g *Gateway) (*openapi3.T, []byte) {
	t.Helper()
	status, hdr, body := docsGet(t, g.URL+"/openapi.json", nil)
	if status != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /openapi.json: %d %s\n%s", status, hdr.Get("Content-Type"), body)
	}
	doc, err := openapi3.NewLoader().LoadFromData(body)
	if err != nil {
		t.Fatalf("the document does not parse: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi = %q", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background(), openapi3.EnableExamplesValidation()); err != nil {
		t.Fatalf("the document does not validate as OpenAPI %s: %v", doc.OpenAPI, err)
	}
	return doc, body
}

// exampleCaddyfileRoutes adapts the example Caddyfile with the gateway
// binary and returns the paths its routes match, wildcards trimmed
// ("/docs*" is "/docs").
func exampleCaddyfileRoutes(t *testing.T) []string {
	t.Helper()
	keys := filepath.Join(t.TempDir(), "api_keys")
	if err := os.WriteFile(keys, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bins.Gateway, "adapt", "--config", filepath.Join(repoRoot(), "Caddyfile"), "--adapter", "caddyfile")
	cmd.Env = append(baseEnv(t), "JWT_SECRET_KEY="+GatewaySecret, "API_KEYS_FILE="+keys)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("adapting the example Caddyfile: %v\n%s", err, stderr)
	}
	var cfg any
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatalf("adapted config: %v", err)
	}
	seen := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if paths, ok := x["path"].([]any); ok {
				for _, p := range paths {
					if s, ok := p.(string); ok {
						seen[strings.TrimSuffix(s, "*")] = true
					}
				}
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(cfg)
	var paths []string
	for p := range seen {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	return paths
}

// catalogueCodes reads the error codes of the catalogue from the source
// (caddymodule/catalogue.go and the constants of the package), without
// linking the gateway into the tests.
func catalogueCodes(t *testing.T) map[string]int {
	t.Helper()
	dir := filepath.Join(repoRoot(), "caddymodule")
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	consts := map[string]string{}
	var catalogue *ast.CompositeLit
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatalf("parsing %s: %v", name, err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			vs, ok := n.(*ast.ValueSpec)
			if !ok {
				return true
			}
			for i, id := range vs.Names {
				if i >= len(vs.Values) {
					continue
				}
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					consts[id.Name], _ = strconv.Unquote(lit.Value)
				}
				if cl, ok := vs.Values[i].(*ast.CompositeLit); ok && id.Name == "Catalogue" {
					catalogue = cl
				}
			}
			return true
		})
	}
	if catalogue == nil {
		t.Fatal("no Catalogue in caddymodule")
	}
	statuses := map[string]int{
		"http.StatusBadRequest": 400, "http.StatusUnauthorized": 401, "http.StatusForbidden": 403,
		"http.StatusNotFound": 404, "http.StatusMethodNotAllowed": 405, "http.StatusRequestEntityTooLarge": 413,
		"http.StatusUnsupportedMediaType": 415, "http.StatusUnprocessableEntity": 422, "http.StatusUpgradeRequired": 426,
		"http.StatusTooManyRequests": 429, "StatusClientClosedRequest": 499, "http.StatusInternalServerError": 500,
		"http.StatusServiceUnavailable": 503, "http.StatusGatewayTimeout": 504,
	}
	codes := map[string]int{}
	for _, elt := range catalogue.Elts {
		kv := elt.(*ast.KeyValueExpr)
		var code string
		switch k := kv.Key.(type) {
		case *ast.Ident:
			code = consts[k.Name]
		case *ast.BasicLit:
			code, _ = strconv.Unquote(k.Value)
		}
		status := 0
		if cl, ok := kv.Value.(*ast.CompositeLit); ok && len(cl.Elts) > 0 {
			var b strings.Builder
			if err := printExpr(&b, cl.Elts[0]); err == nil {
				status = statuses[b.String()]
			}
		}
		if code == "" {
			t.Fatalf("a Catalogue key is not a string constant: %#v", kv.Key)
		}
		codes[code] = status
	}
	return codes
}

// printExpr writes a selector or identifier expression (http.StatusX, X).
func printExpr(b *strings.Builder, e ast.Expr) error {
	switch x := e.(type) {
	case *ast.Ident:
		b.WriteString(x.Name)
	case *ast.SelectorExpr:
		if err := printExpr(b, x.X); err != nil {
			return err
		}
		b.WriteString("." + x.Sel.Name)
	case *ast.KeyValueExpr:
		return printExpr(b, x.Value)
	default:
		return fmt.Errorf("unexpected %T", e)
	}
	return nil
}

// TestOpenAPIDocument checks the served document: it parses and validates
// as OpenAPI 3, it has every route of the example Caddyfile and every code
// of the error catalogue (on a response of the code's status), both auth
// schemes, and the WebSocket messages.
func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()
	g, _, _ := startDocsStack(t, false)
	doc, body := loadOpenAPI(t, g)

	routes := exampleCaddyfileRoutes(t)
	if len(routes) < 9 {
		t.Fatalf("found only %v in the example Caddyfile", routes)
	}
	for _, p := range routes {
		if doc.Paths.Value(p) == nil {
			t.Errorf("route %s of the example Caddyfile is not in the document", p)
		}
	}
	t.Logf("example Caddyfile routes: %v", routes)

	codes := catalogueCodes(t)
	onResponse := map[string]bool{}
	for _, p := range doc.Paths.InMatchingOrder() {
		for _, op := range doc.Paths.Value(p).Operations() {
			for status, rr := range op.Responses.Map() {
				if rr.Value == nil || rr.Value.Content.Get("application/json") == nil {
					continue
				}
				for code, ex := range rr.Value.Content.Get("application/json").Examples {
					want, known := codes[code]
					if !known {
						continue
					}
					if status != "default" && status != strconv.Itoa(want) {
						t.Errorf("%s: %s is documented under %s, its status is %d", p, code, status, want)
					}
					if v, _ := ex.Value.Value.(map[string]any); v["code"] != code {
						t.Errorf("%s %s: the example's code is %v", p, code, v["code"])
					}
					onResponse[code] = true
				}
			}
		}
	}
	for code, status := range codes {
		if status == 0 {
			t.Errorf("%s: could not read its status from catalogue.go", code)
		}
		if !onResponse[code] {
			t.Errorf("catalogue code %s is on no response of the document", code)
		}
	}
	t.Logf("%d catalogue codes, all documented", len(codes))

	schemes := doc.Components.SecuritySchemes
	if s := schemes["bearerAuth"]; s == nil || s.Value.Type != "http" || s.Value.Scheme != "bearer" {
		t.Error("no bearer JWT scheme")
	}
	if s := schemes["apiKeyAuth"]; s == nil || s.Value.Type != "apiKey" || s.Value.In != "header" || s.Value.Name != "X-API-Key" {
		t.Error("no X-API-Key scheme")
	}
	scrape := doc.Paths.Value("/scrape").Post
	if scrape == nil || scrape.Security == nil || len(*scrape.Security) < 2 {
		t.Error("POST /scrape does not require bearer or API key")
	}
	ws := doc.Paths.Value("/ws").Get
	if ws == nil || ws.Extensions["x-websocket"] == nil || ws.Responses.Value("101") == nil {
		t.Fatal("GET /ws does not describe the WebSocket")
	}
	for _, s := range []string{"WebSocketMessage", "WebSocketStatusMessage", "WebSocketTaskEventMessage", "WebSocketClientMessage", "ScrapeRequest", "ScrapeResponse", "ErrorBody"} {
		if doc.Components.Schemas[s] == nil {
			t.Errorf("no %s schema", s)
		}
	}
	t.Logf("document: %d bytes, %d paths, %d schemas", len(body), doc.Paths.Len(), len(doc.Components.Schemas))
}

// TestOpenAPILiveScripts checks that the document and GET /scripts show the
// scripts live workers advertise, at the time of the request.
func TestOpenAPILiveScripts(t *testing.T) {
	t.Parallel()
	g, _, amqpURL := startDocsStack(t, false)
	token := MintToken(t, GatewaySecret, "docs-scripts", time.Hour, nil)

	doc, _ := loadOpenAPI(t, g)
	if s, _ := doc.Extensions["x-scripts"].([]any); len(s) != 0 {
		t.Fatalf("x-scripts with no worker = %v", s)
	}
	if status, _, _ := docsGet(t, g.URL+"/scripts", nil); status != http.StatusUnauthorized {
		t.Fatalf("GET /scripts without a token: %d", status)
	}
	etag := ""
	if _, hdr, _ := docsGet(t, g.URL+"/openapi.json", nil); hdr.Get("ETag") != "" {
		etag = hdr.Get("ETag")
	}

	StartWorker(t, amqpURL)
	var scripts struct {
		Scripts []struct {
			Name             string          `json:"name"`
			Versions         []string        `json:"versions"`
			Latest           string          `json:"latest"`
			Description      string          `json:"description"`
			ParametersSchema json.RawMessage `json:"parameters_schema"`
		} `json:"scripts"`
		Count int `json:"count"`
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		status, _, body := docsGet(t, g.URL+"/scripts", Bearer(token))
		if status != http.StatusOK {
			t.Fatalf("GET /scripts: %d %s", status, body)
		}
		if err := json.Unmarshal(body, &scripts); err != nil {
			t.Fatal(err)
		}
		if scripts.Count > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	byName := map[string]int{}
	for i, s := range scripts.Scripts {
		byName[s.Name] = i
		if len(s.Versions) == 0 || s.Latest == "" || len(s.ParametersSchema) == 0 || s.Description == "" {
			t.Errorf("script %+v lacks versions, description or schema", s)
		}
	}
	if _, ok := byName["echo"]; !ok {
		t.Fatalf("GET /scripts does not list echo: %+v", scripts)
	}

	// the document follows, and says so with a new ETag
	status, hdr, _ := docsGet(t, g.URL+"/openapi.json", map[string]string{"If-None-Match": etag})
	if status != http.StatusOK || hdr.Get("ETag") == etag {
		t.Fatalf("after a worker came: %d, ETag %s (was %s)", status, hdr.Get("ETag"), etag)
	}
	doc, _ = loadOpenAPI(t, g)
	xs, _ := doc.Extensions["x-scripts"].([]any)
	if len(xs) != len(scripts.Scripts) {
		t.Fatalf("x-scripts has %d scripts, GET /scripts %d", len(xs), len(scripts.Scripts))
	}
	for _, x := range xs {
		m := x.(map[string]any)
		name, _ := m["name"].(string)
		if m["parameters_schema_error"] != nil {
			t.Errorf("%s: the worker's schema was rejected: %v", name, m["parameters_schema_error"])
		}
		if doc.Components.Schemas["ScriptParameters."+name] == nil {
			t.Errorf("%s: no parameters schema component", name)
		}
		i, ok := byName[name]
		if !ok {
			t.Errorf("%s is in the document but not in GET /scripts", name)
			continue
		}
		if vs, _ := m["versions"].([]any); len(vs) != len(scripts.Scripts[i].Versions) {
			t.Errorf("%s: versions %v vs %v", name, vs, scripts.Scripts[i].Versions)
		}
	}
	examples := doc.Paths.Value("/scrape").Post.RequestBody.Value.Content.Get("application/json").Examples
	for name := range byName {
		if examples[name] == nil {
			t.Errorf("no request example for %s", name)
		}
	}
	// unchanged scripts: the same document
	if status, _, _ := docsGet(t, g.URL+"/openapi.json", map[string]string{"If-None-Match": hdr.Get("ETag")}); status != http.StatusNotModified {
		t.Errorf("a conditional GET of an unchanged document: %d", status)
	}
}

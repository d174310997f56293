package caddymodule

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/scrapegate/scrapegate/rpc"
)

// loadSpec builds the document, checks that it validates, and returns it
// as a client would read it.
func loadSpec(t *testing.T, opts specOptions, scripts []rpc.ScriptInfo) (*openapi3.T, []byte) {
	t.Helper()
	body, err := renderSpec(context.Background(), opts, describeScripts(scripts), nil)
	if err != nil {
		t.Fatalf("renderSpec: %v", err)
	}
	if err := validateSpecJSON(context.Background(), body); err != nil {
		t.Fatalf("the document does not validate: %v", err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(body)
	if err != nil {
		t.Fatalf("loading: %v", err)
	}
	return doc, body
}

func TestSpecValidates(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    specOptions
		scripts []rpc.ScriptInfo
	}{
		{name: "no workers"},
		{name: "live scripts", scripts: testScripts},
		{name: "custom paths", opts: specOptions{
			Title: "mine", Servers: []OpenAPIServer{{URL: "https://api.example.com", Description: "prod"}},
			Paths: map[string]string{EndpointScrape: "/v1/scrape", EndpointMetrics: "", EndpointWS: ""},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc, _ := loadSpec(t, tc.opts, tc.scripts)
			if doc.OpenAPI != OpenAPIVersion {
				t.Errorf("openapi = %q", doc.OpenAPI)
			}
		})
	}
}

func TestSpecPaths(t *testing.T) {
	doc, _ := loadSpec(t, specOptions{}, nil)
	want := map[string]string{
		"/": "GET", "/health": "GET", "/scrape": "POST", "/ws": "GET", "/status": "GET",
		"/scripts": "GET", "/openapi.json": "GET", "/docs": "GET", "/dashboard": "GET", "/metrics": "GET",
	}
	for p, method := range want {
		item := doc.Paths.Value(p)
		if item == nil || item.GetOperation(method) == nil {
			t.Errorf("%s %s is missing", method, p)
		}
	}
	if n := doc.Paths.Len(); n != len(want) {
		t.Errorf("%d paths, want %d", n, len(want))
	}

	doc, _ = loadSpec(t, specOptions{Paths: map[string]string{EndpointScrape: "/v1/scrape", EndpointMetrics: ""}}, nil)
	if doc.Paths.Value("/v1/scrape") == nil || doc.Paths.Value("/scrape") != nil || doc.Paths.Value("/metrics") != nil {
		t.Errorf("paths not moved: %v", doc.Paths.InMatchingOrder())
	}
}

func TestSpecSecurity(t *testing.T) {
	doc, _ := loadSpec(t, specOptions{}, nil)
	bearer := doc.Components.SecuritySchemes[SchemeBearer].Value
	if bearer.Type != "http" || bearer.Scheme != "bearer" || bearer.BearerFormat != "JWT" {
		t.Errorf("bearer scheme = %+v", bearer)
	}
	key := doc.Components.SecuritySchemes[SchemeAPIKey].Value
	if key.Type != "apiKey" || key.In != "header" || key.Name != "X-API-Key" {
		t.Errorf("api key scheme = %+v", key)
	}
	for _, p := range []string{"/scrape", "/status", "/scripts", "/ws"} {
		for _, op := range doc.Paths.Value(p).Operations() {
			if op.Security == nil || len(*op.Security) < 2 {
				t.Errorf("%s: security = %v, want bearer or api key", p, op.Security)
				continue
			}
			got := map[string]bool{}
			for _, req := range *op.Security {
				for name := range req {
					got[name] = true
				}
			}
			if !got[SchemeBearer] || !got[SchemeAPIKey] {
				t.Errorf("%s: security = %v", p, got)
			}
		}
	}
	for _, p := range []string{"/health", "/", "/openapi.json", "/docs", "/dashboard"} {
		for _, op := range doc.Paths.Value(p).Operations() {
			if op.Security == nil || len(*op.Security) != 0 {
				t.Errorf("%s: want public, got %v", p, op.Security)
			}
		}
	}
}

func TestSpecErrorCatalogue(t *testing.T) {
	doc, body := loadSpec(t, specOptions{}, nil)
	// every code has a component example with its status
	for code, e := range Catalogue {
		ex := doc.Components.Examples[errorExampleName(code)]
		if ex == nil || ex.Value == nil {
			t.Errorf("%s: no component example", code)
			continue
		}
		v, _ := ex.Value.Value.(map[string]any)
		if v["code"] != code || v["error"] != e.Ko {
			t.Errorf("%s: example = %v", code, v)
		}
	}
	// every code is documented on some response of its status (or default)
	documented := map[string]bool{}
	for _, p := range doc.Paths.InMatchingOrder() {
		for _, op := range doc.Paths.Value(p).Operations() {
			for status, rr := range op.Responses.Map() {
				mt := rr.Value.Content.Get("application/json")
				if mt == nil {
					continue
				}
				for code := range mt.Examples {
					e, ok := Catalogue[code]
					if !ok {
						continue
					}
					if status != "default" && status != itoa(e.Status) {
						t.Errorf("%s: %s documented under %s", p, code, status)
					}
					documented[code] = true
				}
			}
		}
	}
	for code := range Catalogue {
		if !documented[code] {
			t.Errorf("%s: on no response", code)
		}
		if !strings.Contains(string(body), `"`+code+`"`) {
			t.Errorf("%s: not in the document", code)
		}
	}
	// POST /scrape documents its statuses
	scrape := doc.Paths.Value("/scrape").Post
	for _, s := range []string{"200", "400", "401", "404", "413", "415", "422", "429", "503", "504"} {
		if scrape.Responses.Value(s) == nil {
			t.Errorf("POST /scrape: no %s response", s)
		}
	}
	if h := scrape.Responses.Value("429").Value.Headers["Retry-After"]; h == nil {
		t.Error("429 has no Retry-After header")
	}
	if h := scrape.Responses.Value("401").Value.Headers["WWW-Authenticate"]; h == nil {
		t.Error("401 has no WWW-Authenticate header")
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestSpecSchemasFromGoTypes(t *testing.T) {
	doc, _ := loadSpec(t, specOptions{}, nil)
	req := doc.Components.Schemas["ScrapeRequest"].Value
	if req == nil {
		t.Fatal("no ScrapeRequest schema")
	}
	if len(req.Required) != 1 || req.Required[0] != "script_name" {
		t.Errorf("required = %v", req.Required)
	}
	name := req.Properties["script_name"].Value
	if name.Pattern != "^[a-zA-Z0-9_-]+$" || name.MaxLength == nil || *name.MaxLength != 128 {
		t.Errorf("script_name = %+v", name)
	}
	if !strings.Contains(name.Description, "names the script to run") {
		t.Errorf("script_name description %q is not the Go doc comment", name.Description)
	}
	if len(name.Examples) == 0 || name.Examples[0] != "echo" {
		t.Errorf("script_name examples = %v", name.Examples)
	}
	if req.AdditionalProperties.Has == nil || *req.AdditionalProperties.Has {
		t.Errorf("ScrapeRequest admits unknown fields")
	}
	timeout := req.Properties["timeout"].Value
	if timeout.Min == nil || *timeout.Min != 1 || timeout.Max == nil || *timeout.Max != 3600 {
		t.Errorf("timeout = %+v", timeout)
	}
	if !strings.Contains(req.Description, "POST /scrape") {
		t.Errorf("ScrapeRequest description = %q", req.Description)
	}

	resp := doc.Components.Schemas["ScrapeResponse"].Value
	for _, f := range []string{"error", "error_code"} {
		if typ := resp.Properties[f].Value.Type; typ == nil || !typ.Includes("null") || !typ.Includes("string") {
			t.Errorf("ScrapeResponse.%s type = %v, want string or null", f, typ)
		}
	}
	if ct := resp.Properties["created_at"].Value; ct.Format != "date-time" {
		t.Errorf("created_at = %+v", ct)
	}
	for _, n := range []string{"ErrorBody", "WebSocketMessage", "WebSocketServerMessage", "WebSocketStatusMessage",
		"WebSocketTaskEventMessage", "Event", "InfoResponse", "ScriptsResponse", "ScriptDescription", statusSchemaName, healthSchemaName} {
		if doc.Components.Schemas[n] == nil {
			t.Errorf("no %s schema", n)
		}
	}
}

// TestSpecDescriptions checks that every schema reflected from this
// package's types has the type's doc comment as its description: a type
// whose file is not embedded (typeSources) would lose it.
func TestSpecDescriptions(t *testing.T) {
	doc, _ := loadSpec(t, specOptions{}, nil)
	seen := map[string]reflect.Type{}
	for _, v := range apiTypes {
		collectStructTypes(reflect.TypeOf(v), seen)
	}
	for name, typ := range seen {
		if typ.PkgPath() != packagePath {
			continue
		}
		s := doc.Components.Schemas[name]
		if s == nil || s.Value == nil {
			t.Errorf("%s: no schema", name)
			continue
		}
		if s.Value.Description == "" {
			t.Errorf("%s: no description: is its file in typeSources?", name)
		}
	}
}

func TestSpecWebSocket(t *testing.T) {
	doc, _ := loadSpec(t, specOptions{}, nil)
	ws := doc.Paths.Value("/ws").Get
	if ws.Responses.Value("101") == nil {
		t.Fatal("GET /ws has no 101 response")
	}
	ext, ok := ws.Extensions["x-websocket"].(map[string]any)
	if !ok {
		t.Fatalf("x-websocket = %T", ws.Extensions["x-websocket"])
	}
	msgs, _ := ext["server_messages"].(map[string]any)
	for _, typ := range append([]string{"status", "subscribed", "pong", "error"}, taskEventTypes...) {
		if msgs[typ] == nil {
			t.Errorf("x-websocket has no %s message", typ)
		}
	}
	if ext["client_messages"] == nil || ext["subprotocol"] != WSSubprotocol {
		t.Errorf("x-websocket = %v", ext)
	}
	union := doc.Components.Schemas["WebSocketServerMessage"].Value
	if len(union.OneOf) != len(wsServerMessages) {
		t.Errorf("WebSocketServerMessage has %d variants", len(union.OneOf))
	}
	client := doc.Components.Schemas["WebSocketClientMessage"]
	if client == nil || client.Value.Properties["action"] == nil || !strings.Contains(client.Value.Properties["action"].Value.Description, "subscribe") {
		t.Errorf("WebSocketClientMessage = %+v", client)
	}
	if ws.Parameters.GetByInAndName("query", "token") == nil {
		t.Error("no token query parameter")
	}
}

func TestSpecScripts(t *testing.T) {
	doc, body := loadSpec(t, specOptions{}, testScripts)
	scripts, ok := doc.Extensions["x-scripts"].([]any)
	if !ok || len(scripts) != len(testScripts) {
		t.Fatalf("x-scripts = %v", doc.Extensions["x-scripts"])
	}
	first := scripts[0].(map[string]any)
	if first["name"] != "broken" || first["parameters_schema_error"] == nil {
		t.Errorf("x-scripts[0] = %v", first)
	}
	var html map[string]any
	for _, s := range scripts {
		if m := s.(map[string]any); m["name"] == "html_extract" {
			html = m
		}
	}
	if v, _ := html["versions"].([]any); len(v) != 3 || v[0] != "1.10.0" || html["latest"] != "1.10.0" {
		t.Errorf("html_extract versions = %v latest %v", html["versions"], html["latest"])
	}
	ps := doc.Components.Schemas[scriptSchemaName("html_extract")]
	if ps == nil || ps.Value == nil || ps.Value.Properties["url"] == nil {
		t.Fatalf("html_extract parameters schema = %+v", ps)
	}
	if sel := ps.Value.Properties["selectors"]; sel == nil || sel.Value == nil || sel.Value.Type == nil || !sel.Value.Type.Is("object") {
		t.Errorf("the $defs reference did not resolve: %+v", sel)
	}
	if doc.Components.Schemas[scriptSchemaName("broken")] == nil || doc.Components.Schemas[scriptSchemaName("noschema")] == nil {
		t.Error("a script without a usable schema has no component")
	}
	// the request examples: one per live script, built from its schema
	examples := doc.Paths.Value("/scrape").Post.RequestBody.Value.Content.Get("application/json").Examples
	for _, s := range testScripts {
		if examples[s.Name] == nil {
			t.Errorf("no request example for %s", s.Name)
		}
	}
	ex := examples["html_extract"].Value.Value.(map[string]any)
	params := ex["parameters"].(map[string]any)
	if params["url"] != "https://example.com" {
		t.Errorf("html_extract example parameters = %v", params)
	}
	if !strings.Contains(string(body), `Extracts \\| selectors.`) {
		t.Error("the scrape tag does not list the scripts (with | escaped)")
	}
}

func TestSpecEchoExampleWithoutWorkers(t *testing.T) {
	doc, _ := loadSpec(t, specOptions{}, nil)
	examples := doc.Paths.Value("/scrape").Post.RequestBody.Value.Content.Get("application/json").Examples
	echo := examples["echo"]
	if echo == nil {
		t.Fatal("no echo example")
	}
	v := echo.Value.Value.(map[string]any)
	if v["script_name"] != "echo" || v["parameters"].(map[string]any)["url"] != "https://example.com" {
		t.Errorf("echo example = %v", v)
	}
	if s, _ := doc.Extensions["x-scripts"].([]any); len(s) != 0 {
		t.Errorf("x-scripts = %v, want empty", s)
	}
}

func TestGoComments(t *testing.T) {
	m, err := goComments(typeSources, packagePath)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"ScrapeRequest", "ScrapeRequest.ScriptName", "ErrorBody.Code", "ScriptsResponse.Scripts"} {
		if m[packagePath+"."+k] == "" {
			t.Errorf("no comment for %s", k)
		}
	}
	if got := cleanComment("a\nb\n\nc  d\n"); got != "a b\n\nc d" {
		t.Errorf("cleanComment = %q", got)
	}
}

func TestExampleFromSchema(t *testing.T) {
	for _, tc := range []struct{ schema, want string }{
		{`{"type":"object","properties":{"n":{"type":"integer","minimum":3},"b":{"type":"boolean"}}}`, `{"b":false,"n":3}`},
		{`{"type":"object","properties":{"u":{"type":"string","format":"uri"},"e":{"enum":["x","y"]}}}`, `{"e":"x","u":"https://example.com"}`},
		{`{"examples":[{"a":1}],"type":"object"}`, `{"a":1}`},
		{`{"type":"array","items":{"type":"string","default":"z"}}`, `["z"]`},
		{`{"type":["string","null"]}`, `"string"`},
		{`{}`, `null`},
	} {
		var s map[string]any
		if err := json.Unmarshal([]byte(tc.schema), &s); err != nil {
			t.Fatal(err)
		}
		got, _ := json.Marshal(exampleFromSchema(s, 0))
		if string(got) != tc.want {
			t.Errorf("%s: got %s, want %s", tc.schema, got, tc.want)
		}
	}
}

func TestScrapeOpenAPIServeHTTP(t *testing.T) {
	src := &fakeScripts{list: testScripts[:1]}
	h := &ScrapeOpenAPI{scripts: src.Scripts}
	w, err := serveOnce(t, h, httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
	if err != nil || w.Code != http.StatusOK {
		t.Fatalf("GET: %d %v", w.Code, err)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	etag := w.Header().Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	if err := validateSpecJSON(context.Background(), w.Body.Bytes()); err != nil {
		t.Fatalf("served document: %v", err)
	}

	// unchanged scripts: 304 to a conditional request
	r := httptest.NewRequest(http.MethodGet, "/openapi.json", nil)
	r.Header.Set("If-None-Match", etag)
	if w, err = serveOnce(t, h, r); err != nil || w.Code != http.StatusNotModified {
		t.Errorf("conditional GET: %d %v", w.Code, err)
	}

	// a new worker's script: a new document
	src.set(testScripts)
	r = httptest.NewRequest(http.MethodGet, "/openapi.json", nil)
	r.Header.Set("If-None-Match", etag)
	w, err = serveOnce(t, h, r)
	if err != nil || w.Code != http.StatusOK || w.Header().Get("ETag") == etag {
		t.Fatalf("after a change: %d %v etag %s", w.Code, err, w.Header().Get("ETag"))
	}
	if !strings.Contains(w.Body.String(), scriptSchemaName("html_extract")) {
		t.Error("the new script is not in the document")
	}

	r = httptest.NewRequest(http.MethodGet, "/openapi.json", nil)
	r.Header.Set("Accept-Encoding", "gzip")
	gw, err := serveOnce(t, h, r)
	if err != nil || gw.Header().Get("Content-Encoding") != "gzip" || gw.Header().Get("ETag") == w.Header().Get("ETag") {
		t.Fatalf("gzip: %v %v", err, gw.Header())
	}
	zr, err := gzip.NewReader(gw.Body)
	if err != nil {
		t.Fatal(err)
	}
	if unzipped, _ := io.ReadAll(zr); !bytes.Equal(unzipped, w.Body.Bytes()) || gw.Body.Len() >= w.Body.Len()/3 {
		t.Errorf("gzip body: %d bytes for %d", gw.Body.Len(), w.Body.Len())
	}

	w, err = serveOnce(t, h, httptest.NewRequest(http.MethodHead, "/openapi.json", nil))
	if err != nil || w.Code != http.StatusOK || w.Body.Len() != 0 {
		t.Errorf("HEAD: %d %v %d bytes", w.Code, err, w.Body.Len())
	}

	w, err = serveOnce(t, h, httptest.NewRequest(http.MethodPost, "/openapi.json", nil))
	wantCode(t, err, CodeMethodNotAllowed)
	if w.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("Allow = %q", w.Header().Get("Allow"))
	}
}

func TestScrapeOpenAPIValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    *ScrapeOpenAPI
		err  string
	}{
		{"ok", &ScrapeOpenAPI{Paths: map[string]string{"scrape": "/v1/scrape", "metrics": ""}}, ""},
		{"unknown endpoint", &ScrapeOpenAPI{Paths: map[string]string{"nope": "/x"}}, `unknown endpoint "nope"`},
		{"relative path", &ScrapeOpenAPI{Paths: map[string]string{"scrape": "scrape"}}, "not a plain absolute path"},
		{"wildcard path", &ScrapeOpenAPI{Paths: map[string]string{"docs": "/docs*"}}, "not a plain absolute path"},
		{"empty server", &ScrapeOpenAPI{Servers: []OpenAPIServer{{}}}, "servers 0: empty url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.h.Validate()
			if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("Validate() = %v, want %q", err, tc.err)
			}
		})
	}
}

func TestScrapeOpenAPICaddyfile(t *testing.T) {
	for _, tc := range []struct {
		name, input string
		want        *ScrapeOpenAPI
		err         string
	}{
		{name: "bare", input: `scrape_openapi`, want: new(ScrapeOpenAPI)},
		{name: "full", input: `scrape_openapi {
			title "My API"
			server https://api.example.com production
			server /
			path scrape /v1/scrape
			path metrics off
		}`, want: &ScrapeOpenAPI{
			Title:   "My API",
			Servers: []OpenAPIServer{{URL: "https://api.example.com", Description: "production"}, {URL: "/"}},
			Paths:   map[string]string{"scrape": "/v1/scrape", "metrics": ""},
		}},
		{name: "argument", input: `scrape_openapi foo`, err: "wrong argument count"},
		{name: "unknown", input: "scrape_openapi {\n nope\n}", err: "unrecognized subdirective: nope"},
		{name: "duplicate title", input: "scrape_openapi {\n title a\n title b\n}", err: "duplicate subdirective: title"},
		{name: "title without value", input: "scrape_openapi {\n title\n}", err: "wrong argument count"},
		{name: "server extra", input: "scrape_openapi {\n server a b c\n}", err: "wrong argument count"},
		{name: "path unknown", input: "scrape_openapi {\n path nope /x\n}", err: `unknown endpoint "nope"`},
		{name: "path duplicate", input: "scrape_openapi {\n path ws /a\n path ws /b\n}", err: `duplicate endpoint "ws"`},
		{name: "path relative", input: "scrape_openapi {\n path ws a\n}", err: "not an absolute path"},
		{name: "path missing", input: "scrape_openapi {\n path ws\n}", err: "wrong argument count"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := new(ScrapeOpenAPI)
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(h)
			if tc.want == nil {
				tc.want = new(ScrapeOpenAPI)
			}
			want, _ := json.Marshal(tc.want)
			if string(got) != string(want) {
				t.Errorf("got %s, want %s", got, want)
			}
		})
	}
}

// BenchmarkRenderSpec measures building, serialising and validating the
// document (what a request pays when the live scripts changed).
func BenchmarkRenderSpec(b *testing.B) {
	scripts := describeScripts(testScripts)
	for b.Loop() {
		if _, err := renderSpec(context.Background(), specOptions{}, scripts, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzScriptSchemas feeds arbitrary worker parameter schemas to the
// document builder: it must never panic, and the document must stay valid
// (a bad schema is replaced, never served as is).
func FuzzScriptSchemas(f *testing.F) {
	for _, s := range testScripts {
		f.Add(string(s.ParametersSchema))
	}
	f.Add(`{"type":"object","properties":{"a":{"$ref":"#/$defs/a"}},"$defs":{"a":{"type":["string","null"]}}}`)
	f.Add(`{"type":"array","items":{"enum":[1,"x",null]},"minItems":2}`)
	f.Add(`true`)
	f.Add(`{"$ref":"#"}`)
	f.Fuzz(func(t *testing.T, schema string) {
		if !json.Valid([]byte(schema)) {
			return
		}
		scripts := describeScripts([]rpc.ScriptInfo{{Name: "fuzzed", Versions: []string{"1"}, ParametersSchema: json.RawMessage(schema)}})
		body, err := renderSpec(context.Background(), specOptions{}, scripts, nil)
		if err != nil {
			t.Fatalf("renderSpec: %v", err)
		}
		if err := validateSpecJSON(context.Background(), body); err != nil {
			t.Fatalf("schema %s made an invalid document: %v", schema, err)
		}
		var m map[string]any
		_ = json.Unmarshal([]byte(schema), &m)
		_ = exampleFromSchema(m, 0)
	})
}

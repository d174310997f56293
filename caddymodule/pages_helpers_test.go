package caddymodule

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/scrapegate/scrapegate/rpc"
)

// testScripts are what fake workers advertise in these tests.
var testScripts = []rpc.ScriptInfo{
	{Name: "echo", Versions: []string{"1.0.0"}, Description: "Returns its parameters.", ParametersSchema: json.RawMessage(`{"type":"object"}`)},
	{
		Name: "html_extract", Versions: []string{"1.0.0", "1.2.0", "1.10.0"}, Description: "Extracts | selectors.",
		ParametersSchema: json.RawMessage(`{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object",
			"required":["url","selectors"],
			"properties":{"url":{"type":"string","format":"uri"},"selectors":{"$ref":"#/$defs/selectors"}},
			"$defs":{"selectors":{"type":"object","additionalProperties":{"type":"string"},"examples":[{"title":"h1"}]}}}`),
	},
	{Name: "broken", Versions: []string{"0.1"}, ParametersSchema: json.RawMessage(`{"type":"object","properties":{"x":{"$ref":"https://elsewhere.example/s.json"}}}`)},
	{Name: "noschema", Versions: []string{"2.0.0"}},
}

// fakeScripts is a scripts source whose list a test changes.
type fakeScripts struct {
	mu    sync.Mutex
	list  []rpc.ScriptInfo
	calls int
}

func (f *fakeScripts) Scripts() []rpc.ScriptInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return append([]rpc.ScriptInfo(nil), f.list...)
}

func (f *fakeScripts) set(l []rpc.ScriptInfo) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.list = l
}

// serveOnce runs a handler on a request and returns the recorder and error.
func serveOnce(t *testing.T, h caddyhttp.MiddlewareHandler, r *http.Request) (*httptest.ResponseRecorder, error) {
	t.Helper()
	w := httptest.NewRecorder()
	err := h.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		t.Error("next handler called")
		return nil
	}))
	return w, err
}

// wantCode checks that err is a handler error with the catalogue code.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var he caddyhttp.HandlerError
	var ce *CodedError
	if !errors.As(err, &he) || !errors.As(err, &ce) || ce.Code != code || he.StatusCode != Catalogue[code].Status {
		t.Errorf("error = %v, want %s", err, code)
	}
}

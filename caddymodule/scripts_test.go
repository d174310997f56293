package caddymodule

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/scrapegate/scrapegate/rpc"
)

func TestScrapeScriptsServeHTTP(t *testing.T) {
	src := &fakeScripts{list: testScripts}
	h := &ScrapeScripts{scripts: src.Scripts}
	w, err := serveOnce(t, h, httptest.NewRequest(http.MethodGet, "/scripts", nil))
	if err != nil || w.Code != http.StatusOK {
		t.Fatalf("GET: %d %v", w.Code, err)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	var got ScriptsResponse
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range got.Scripts {
		names = append(names, s.Name)
	}
	if want := []string{"broken", "echo", "html_extract", "noschema"}; !reflect.DeepEqual(names, want) || got.Count != 4 {
		t.Errorf("names = %v count %d, want %v", names, got.Count, want)
	}
	html := got.Scripts[2]
	if !reflect.DeepEqual(html.Versions, []string{"1.10.0", "1.2.0", "1.0.0"}) || html.Latest != "1.10.0" {
		t.Errorf("html_extract versions %v latest %q", html.Versions, html.Latest)
	}
	if !strings.Contains(string(html.ParametersSchema), `"selectors"`) || html.Description == "" {
		t.Errorf("html_extract = %+v", html)
	}
	if ns := got.Scripts[3]; string(ns.ParametersSchema) != `{"type":"object"}` {
		t.Errorf("a script without a schema shows %s", ns.ParametersSchema)
	}
	if got.Timestamp.IsZero() {
		t.Error("no timestamp")
	}

	// no live worker: an empty list, not null
	src.set(nil)
	w, _ = serveOnce(t, h, httptest.NewRequest(http.MethodGet, "/scripts", nil))
	if !strings.Contains(w.Body.String(), `"scripts":[]`) || !strings.Contains(w.Body.String(), `"count":0`) {
		t.Errorf("empty list = %s", w.Body.String())
	}

	w, err = serveOnce(t, h, httptest.NewRequest(http.MethodHead, "/scripts", nil))
	if err != nil || w.Code != http.StatusOK || w.Body.Len() != 0 {
		t.Errorf("HEAD: %d %v %q", w.Code, err, w.Body.String())
	}
	w, err = serveOnce(t, h, httptest.NewRequest(http.MethodDelete, "/scripts", nil))
	wantCode(t, err, CodeMethodNotAllowed)
	if w.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("Allow = %q", w.Header().Get("Allow"))
	}
}

func TestSortVersions(t *testing.T) {
	for _, tc := range []struct{ in, want []string }{
		{nil, []string{}},
		{[]string{"1.0.0", "1.10.0", "1.2.0"}, []string{"1.10.0", "1.2.0", "1.0.0"}},
		{[]string{"v2", "1.0.0-beta", "1.0.0", "latest", "1.0.0", " "}, []string{"v2", "1.0.0", "1.0.0-beta", "latest"}},
		{[]string{"b", "a", "c"}, []string{"c", "b", "a"}},
	} {
		if got := sortVersions(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("sortVersions(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestDescribeScriptsKeepsInput(t *testing.T) {
	in := []rpc.ScriptInfo{{Name: "b", Versions: []string{"1.0.0", "2.0.0"}}, {Name: "a"}}
	out := describeScripts(in)
	if out[0].Name != "a" || out[0].Latest != "" || len(out[0].Versions) != 0 {
		t.Errorf("a = %+v", out[0])
	}
	if in[0].Versions[0] != "1.0.0" {
		t.Error("describeScripts changed its input")
	}
}

func TestScrapeScriptsCaddyfile(t *testing.T) {
	for _, tc := range []struct{ input, err string }{
		{"scrape_scripts", ""},
		{"scrape_scripts foo", "wrong argument count"},
		{"scrape_scripts {\n foo\n}", "unrecognized subdirective: foo"},
	} {
		var h ScrapeScripts
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%q: err = %v, want %q", tc.input, err, tc.err)
		}
	}
}

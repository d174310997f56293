package worker

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/scrapegate/scrapegate/rpc"
)

const shopPage = `<!doctype html>
<html><head><title>  Shop  </title></head><body>
<h1 class="name">
   Blue   kettle
</h1>
<span class="price" data-currency="EUR">12.50</span>
<ul>
  <li><a class="tag" href="/t/kitchen">kitchen</a></li>
  <li><a class="tag" href="/t/blue">blue</a></li>
  <li><a class="tag">no link</a></li>
</ul>
</body></html>`

func TestHTMLExtract(t *testing.T) {
	rt := newRuntime(t, Config{AllowNetworks: loopback})
	selectors := map[string]any{
		"title":     "title",
		"name":      "h1.name",
		"currency":  map[string]any{"selector": ".price", "attribute": "data-currency"},
		"tags":      map[string]any{"selector": "a.tag", "list": true},
		"links":     map[string]any{"selector": "a.tag", "attribute": "href", "list": true},
		"missing":   ".nothing-here",
		"none":      map[string]any{"selector": ".nothing-here", "list": true},
		"no_attr":   map[string]any{"selector": "h1", "attribute": "href"},
		"first_tag": "ul a.tag, .price",
	}
	want := map[string]any{
		"title":     "Shop",
		"name":      "Blue   kettle",
		"currency":  "EUR",
		"tags":      []any{"kitchen", "blue", "no link"},
		"links":     []any{"/t/kitchen", "/t/blue"},
		"missing":   nil,
		"none":      []any{},
		"no_attr":   nil,
		"first_tag": "12.50",
	}
	check := func(t *testing.T, m map[string]any) {
		t.Helper()
		got, _ := json.Marshal(m["fields"])
		exp, _ := json.Marshal(want)
		if string(got) != string(exp) {
			t.Fatalf("fields\n got %s\nwant %s", got, exp)
		}
	}

	t.Run("inline html", func(t *testing.T) {
		m := mustOK(t)(runTask(t.Context(), t, rt, HTMLExtractScript, "", map[string]any{"html": shopPage, "selectors": selectors}, 5*time.Second))
		check(t, m)
		if _, ok := m["url"]; ok {
			t.Errorf("inline html has a url: %v", m)
		}
	})
	t.Run("fetched", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write([]byte(shopPage))
		}))
		defer srv.Close()
		m := mustOK(t)(runTask(t.Context(), t, rt, HTMLExtractScript, "", map[string]any{"url": srv.URL + "/p/1", "selectors": selectors}, 5*time.Second))
		check(t, m)
		if m["url"] != srv.URL+"/p/1" || m["status"] != 200.0 {
			t.Errorf("url/status: %v %v", m["url"], m["status"])
		}
	})
	t.Run("charset", func(t *testing.T) {
		srv := testSite(t, nil)
		m := mustOK(t)(runTask(t.Context(), t, rt, HTMLExtractScript, "", map[string]any{"url": srv.URL + "/latin1", "selectors": map[string]any{"h": "h1"}}, 5*time.Second))
		if m["fields"].(map[string]any)["h"] != "café" {
			t.Fatalf("got %v", m)
		}
	})
	t.Run("refused with the default settings", func(t *testing.T) {
		srv := testSite(t, nil)
		rt := newRuntime(t, Config{})
		_, te := runTask(t.Context(), t, rt, HTMLExtractScript, "", map[string]any{"url": srv.URL + "/latin1", "selectors": map[string]any{"h": "h1"}}, 5*time.Second)
		mustFail(t, te, rpc.CodeScriptError, "refused to connect", "loopback address")
	})
	for name, tc := range map[string]struct {
		params map[string]any
		want   string
	}{
		"bad selector":       {map[string]any{"html": "<p>", "selectors": map[string]any{"x": "p[["}}, "selectors.x: bad CSS selector"},
		"url and html":       {map[string]any{"html": "<p>", "url": "http://example.com/", "selectors": map[string]any{"x": "p"}}, "url or html, not both"},
		"neither":            {map[string]any{"selectors": map[string]any{"x": "p"}}, "missing property"},
		"no selectors":       {map[string]any{"html": "<p>"}, "missing property 'selectors'"},
		"empty selectors":    {map[string]any{"html": "<p>", "selectors": map[string]any{}}, "minProperties"},
		"bad spec":           {map[string]any{"html": "<p>", "selectors": map[string]any{"x": map[string]any{"attribute": "href"}}}, "/selectors/x"},
		"spec unknown field": {map[string]any{"html": "<p>", "selectors": map[string]any{"x": map[string]any{"selector": "p", "all": true}}}, "/selectors/x"},
	} {
		t.Run("invalid parameters: "+name, func(t *testing.T) {
			_, te := runTask(t.Context(), t, rt, HTMLExtractScript, "", tc.params, 5*time.Second)
			mustFail(t, te, rpc.CodeInvalidParameters, tc.want)
		})
	}
}

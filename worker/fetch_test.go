package worker

import (
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scrapegate/scrapegate/rpc"
)

// testSite is a local site with the pages the fetch tests need.
func testSite(t *testing.T, hits *atomic.Int64) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Test", "yes")
		fmt.Fprintf(w, "hello %s %s", r.Method, r.Header.Get("X-Asked"))
	})
	mux.HandleFunc("/echo-body", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"method": %q, "body": %q}`, r.Method, b)
	})
	mux.HandleFunc("/redirect/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.PathValue("n"))
		if n <= 0 {
			http.Redirect(w, r, "/hello", http.StatusFound)
			return
		}
		http.Redirect(w, r, fmt.Sprintf("/redirect/%d", n-1), http.StatusFound)
	})
	mux.HandleFunc("/redirect-to", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Query().Get("u"), http.StatusFound)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		if r.URL.Query().Get("chunked") == "" {
			w.Header().Set("Content-Length", strconv.Itoa(n))
		}
		w.Header().Set("Content-Type", "text/plain")
		chunk := []byte(strings.Repeat("x", 4096))
		for n > 0 {
			c := chunk[:min(n, len(chunk))]
			if _, err := w.Write(c); err != nil {
				return
			}
			n -= len(c)
		}
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	mux.HandleFunc("/latin1", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=iso-8859-1")
		_, _ = w.Write([]byte("<html><body><h1>caf\xe9</h1></body></html>"))
	})
	mux.HandleFunc("/png", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write([]byte("\x89PNG\r\n\x1a\n\x00\xff\xfe"))
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits != nil {
			hits.Add(1)
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestHTTPFetch(t *testing.T) {
	srv := testSite(t, nil)
	rt := newRuntime(t, Config{AllowNetworks: loopback})
	ctx := t.Context()

	t.Run("get", func(t *testing.T) {
		m := mustOK(t)(runTask(ctx, t, rt, HTTPFetchScript, "", map[string]any{
			"url": srv.URL + "/hello", "headers": map[string]string{"X-Asked": "please"},
		}, 5*time.Second))
		if m["status"] != 200.0 || m["body"] != "hello GET please" || m["url"] != srv.URL+"/hello" || m["truncated"] != false {
			t.Fatalf("got %v", m)
		}
		if h := m["headers"].(map[string]any)["X-Test"]; fmt.Sprint(h) != "[yes]" {
			t.Fatalf("headers %v", m["headers"])
		}
	})
	t.Run("post", func(t *testing.T) {
		m := mustOK(t)(runTask(ctx, t, rt, HTTPFetchScript, "", map[string]any{
			"url": srv.URL + "/echo-body", "method": "POST", "body": "a=1",
		}, 5*time.Second))
		if m["body"] != `{"method": "POST", "body": "a=1"}` {
			t.Fatalf("got %v", m)
		}
	})
	t.Run("redirects followed", func(t *testing.T) {
		m := mustOK(t)(runTask(ctx, t, rt, HTTPFetchScript, "", map[string]any{"url": srv.URL + "/redirect/2"}, 5*time.Second))
		if m["url"] != srv.URL+"/hello" || m["status"] != 200.0 || len(m["redirects"].([]any)) != 3 {
			t.Fatalf("got %v", m)
		}
	})
	t.Run("too many redirects", func(t *testing.T) {
		_, te := runTask(ctx, t, rt, HTTPFetchScript, "", map[string]any{"url": srv.URL + "/redirect/5", "max_redirects": 2}, 5*time.Second)
		mustFail(t, te, rpc.CodeScriptError, "too many redirects", "stopped after 2")
	})
	t.Run("worker redirect limit", func(t *testing.T) {
		rt := newRuntime(t, Config{AllowNetworks: loopback, FetchMaxRedirects: 1})
		_, te := runTask(ctx, t, rt, HTTPFetchScript, "", map[string]any{"url": srv.URL + "/redirect/3", "max_redirects": 50}, 5*time.Second)
		mustFail(t, te, rpc.CodeScriptError, "stopped after 1")
	})
	t.Run("redirect not followed", func(t *testing.T) {
		m := mustOK(t)(runTask(ctx, t, rt, HTTPFetchScript, "", map[string]any{"url": srv.URL + "/redirect/0", "follow_redirects": false}, 5*time.Second))
		if m["status"] != 302.0 || fmt.Sprint(m["headers"].(map[string]any)["Location"]) != "[/hello]" {
			t.Fatalf("got %v", m)
		}
	})
	for _, chunked := range []bool{false, true} {
		q := fmt.Sprintf("/big?n=%d", 3<<20)
		if chunked {
			q += "&chunked=1"
		}
		t.Run(fmt.Sprintf("large body cut at the limit (chunked=%v)", chunked), func(t *testing.T) {
			_, te := runTask(ctx, t, rt, HTTPFetchScript, "", map[string]any{"url": srv.URL + q, "max_body_bytes": 1000}, 5*time.Second)
			mustFail(t, te, rpc.CodeOutputTooLarge, "larger than 1000 bytes")
			m := mustOK(t)(runTask(ctx, t, rt, HTTPFetchScript, "", map[string]any{"url": srv.URL + q, "max_body_bytes": 1000, "truncate": true}, 5*time.Second))
			if len(m["body"].(string)) != 1000 || m["truncated"] != true {
				t.Fatalf("body of %d bytes, truncated %v", len(m["body"].(string)), m["truncated"])
			}
		})
	}
	t.Run("worker body limit", func(t *testing.T) {
		rt := newRuntime(t, Config{AllowNetworks: loopback, FetchMaxBodyBytes: 64 << 10})
		_, te := runTask(ctx, t, rt, HTTPFetchScript, "", map[string]any{"url": srv.URL + "/big?chunked=1&n=1000000", "max_body_bytes": 1 << 30}, 5*time.Second)
		mustFail(t, te, rpc.CodeOutputTooLarge, "larger than 65536 bytes")
	})
	t.Run("slow server hits the task deadline", func(t *testing.T) {
		start := time.Now()
		_, te := runTask(ctx, t, rt, HTTPFetchScript, "", map[string]any{"url": srv.URL + "/slow"}, 300*time.Millisecond)
		mustFail(t, te, rpc.CodeScriptTimeout, "deadline")
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("took %s", d)
		}
	})
	t.Run("slow server hits timeout_ms", func(t *testing.T) {
		_, te := runTask(ctx, t, rt, HTTPFetchScript, "", map[string]any{"url": srv.URL + "/slow", "timeout_ms": 200}, 5*time.Second)
		mustFail(t, te, rpc.CodeScriptTimeout, "no complete answer within 200ms")
	})
	t.Run("charset", func(t *testing.T) {
		m := mustOK(t)(runTask(ctx, t, rt, HTTPFetchScript, "", map[string]any{"url": srv.URL + "/latin1"}, 5*time.Second))
		if !strings.Contains(m["body"].(string), "café") {
			t.Fatalf("body %q", m["body"])
		}
	})
	t.Run("binary body", func(t *testing.T) {
		m := mustOK(t)(runTask(ctx, t, rt, HTTPFetchScript, "", map[string]any{"url": srv.URL + "/png"}, 5*time.Second))
		b, err := base64.StdEncoding.DecodeString(m["body_base64"].(string))
		if err != nil || string(b) != "\x89PNG\r\n\x1a\n\x00\xff\xfe" || m["body"] != nil {
			t.Fatalf("got %v (%v)", m, err)
		}
	})
	t.Run("tls failure", func(t *testing.T) {
		tlsSrv := httptest.NewTLSServer(http.NotFoundHandler())
		defer tlsSrv.Close()
		_, te := runTask(ctx, t, rt, HTTPFetchScript, "", map[string]any{"url": tlsSrv.URL}, 5*time.Second)
		mustFail(t, te, rpc.CodeScriptError, "TLS handshake failed", "certificate")
	})
	t.Run("dns failure", func(t *testing.T) {
		_, te := runTask(ctx, t, rt, HTTPFetchScript, "", map[string]any{"url": "http://no-such-host.invalid/"}, 10*time.Second)
		mustFail(t, te, rpc.CodeScriptError, "DNS lookup of no-such-host.invalid failed")
	})
	t.Run("connection refused", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := ln.Addr().String()
		ln.Close()
		_, te := runTask(ctx, t, rt, HTTPFetchScript, "", map[string]any{"url": "http://" + addr + "/"}, 5*time.Second)
		mustFail(t, te, rpc.CodeScriptError, "connection refused")
	})
	for name, params := range map[string]map[string]any{
		"no url":        {},
		"ftp url":       {"url": "ftp://example.com/"},
		"bad method":    {"url": srv.URL, "method": "DELETE"},
		"unknown field": {"url": srv.URL, "nope": 1},
		"get with body": {"url": srv.URL, "method": "GET", "body": "x"},
	} {
		t.Run("invalid parameters: "+name, func(t *testing.T) {
			_, te := runTask(ctx, t, rt, HTTPFetchScript, "", params, 5*time.Second)
			mustFail(t, te, rpc.CodeInvalidParameters)
		})
	}
}

// TestHTTPFetchRefusals uses the default settings: nothing but public
// addresses, and no request ever reaches the local server.
func TestHTTPFetchRefusals(t *testing.T) {
	var hits atomic.Int64
	srv := testSite(t, &hits)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	rt := newRuntime(t, Config{})
	for _, tc := range []struct{ url, reason string }{
		{srv.URL + "/hello", "loopback"},
		{"http://localhost:" + port + "/hello", "loopback"},
		{"http://[::1]:" + port + "/", "loopback"},
		{"http://10.0.0.1/", "private"},
		{"http://192.168.1.1:8080/", "private"},
		{"http://169.254.169.254/latest/meta-data/", "link-local"},
		{"http://0.0.0.0:" + port + "/", "unspecified"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			_, te := runTask(t.Context(), t, rt, HTTPFetchScript, "", map[string]any{"url": tc.url}, 5*time.Second)
			mustFail(t, te, rpc.CodeScriptError, "refused to connect", tc.reason+" address")
		})
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the local server got %d requests", n)
	}
}

// TestHTTPFetchRedirectToRefused: an allowed server redirects to addresses
// the worker refuses; the redirect is not followed.
func TestHTTPFetchRedirectToRefused(t *testing.T) {
	srv := testSite(t, nil)
	rt := newRuntime(t, Config{AllowNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	for _, tc := range []struct{ target, reason string }{
		{"http://169.254.169.254/latest/meta-data/", "link-local"},
		{"http://10.0.0.1/admin", "private"},
		{"http://127.0.0.2:" + port + "/hello", "loopback"},
	} {
		t.Run(tc.target, func(t *testing.T) {
			_, te := runTask(t.Context(), t, rt, HTTPFetchScript, "", map[string]any{"url": srv.URL + "/redirect-to?u=" + tc.target}, 5*time.Second)
			mustFail(t, te, rpc.CodeScriptError, "refused to connect", tc.reason+" address")
		})
	}
}

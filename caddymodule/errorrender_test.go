package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func TestScrapeErrorRender(t *testing.T) {
	cases := []struct {
		name    string
		err     error
		lang    string
		headers map[string]string // set before the error route, must survive
		status  int
		code    string
		message string
		detail  string
	}{
		{name: "ours ko", err: Error(CodeValidationError, "timeout: must be between 1 and 3600", nil), status: 422, code: CodeValidationError,
			message: Catalogue[CodeValidationError].Ko, detail: "timeout: must be between 1 and 3600"},
		{name: "ours en", err: Error(CodeValidationError, "x", nil), lang: "en-US,en;q=0.9", status: 422, code: CodeValidationError,
			message: Catalogue[CodeValidationError].En, detail: "x"},
		{name: "ko preferred", err: Error(CodeTimeout, "", nil), lang: "ko-KR,en;q=0.5", status: 504, code: CodeTimeout, message: Catalogue[CodeTimeout].Ko},
		{name: "auth 401", err: caddyhttp.Error(http.StatusUnauthorized, errors.New("not authenticated")), lang: "en",
			headers: map[string]string{"WWW-Authenticate": `Bearer realm="scrapegate"`}, status: 401, code: CodeUnauthorized, message: Catalogue[CodeUnauthorized].En},
		{name: "rate limit 429", err: caddyhttp.Error(http.StatusTooManyRequests, errors.New("rate limited")),
			headers: map[string]string{"Retry-After": "7"}, status: 429, code: CodeRateLimited, message: Catalogue[CodeRateLimited].Ko},
		{name: "caddy 404", err: caddyhttp.Error(http.StatusNotFound, nil), status: 404, code: CodeNotFound},
		{name: "caddy 405", err: caddyhttp.Error(http.StatusMethodNotAllowed, nil), status: 405, code: CodeMethodNotAllowed},
		{name: "request_body 413", err: caddyhttp.Error(http.StatusRequestEntityTooLarge, nil), status: 413, code: CodeBodyTooLarge},
		{name: "other 4xx", err: caddyhttp.Error(http.StatusTeapot, nil), status: 418, code: CodeBadRequest},
		{name: "plain error", err: errors.New("db password wrong"), status: 500, code: CodeInternalError, message: Catalogue[CodeInternalError].Ko, detail: "request id rid-1"},
		{name: "502 from a proxy", err: caddyhttp.Error(http.StatusBadGateway, errors.New("dial 10.0.0.1")), status: 502, code: CodeInternalError, detail: "request id rid-1"},
		{name: "ours 500", err: Error(CodeInternalError, "", errors.New("secret cause")), status: 500, code: CodeInternalError, detail: "request id rid-1"},
		{name: "ours 503 keeps safe detail", err: Error(CodeBrokerUnavailable, "the broker did not accept the task", errors.New("secret cause")),
			status: 503, code: CodeBrokerUnavailable, detail: "the broker did not accept the task"},
		{name: "wrapped coded", err: fmt.Errorf("outer: %w", Error(CodeNoWorkers, "none", nil)), status: 503, code: CodeNoWorkers},
		{name: "no error", err: nil, status: 500, code: CodeInternalError},
		{name: "bogus status", err: caddyhttp.Error(302, nil), status: 500, code: CodeInternalError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zap.InfoLevel)
			h := &ScrapeError{logger: zap.New(core)}
			r, repl := newTestRequest("GET", "", map[string]string{"Accept-Language": tc.lang})
			repl.Set("http.error", tc.err)
			reqID, _ := repl.GetString("http.request.uuid")
			w := httptest.NewRecorder()
			for k, v := range tc.headers {
				w.Header().Set(k, v)
			}
			if err := h.ServeHTTP(w, r, nil); err != nil {
				t.Fatal(err)
			}
			if w.Code != tc.status {
				t.Errorf("status %d, want %d", w.Code, tc.status)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
				t.Errorf("content type %q", ct)
			}
			for k, v := range tc.headers {
				if got := w.Header().Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			var body map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("%v: %s", err, w.Body)
			}
			for _, k := range []string{"error", "detail", "code", "request_id", "timestamp"} {
				if _, ok := body[k]; !ok {
					t.Errorf("field %s missing: %s", k, w.Body)
				}
			}
			if body["code"] != tc.code || body["request_id"] != reqID {
				t.Errorf("body %s", w.Body)
			}
			if tc.message != "" && body["error"] != tc.message {
				t.Errorf("message %q, want %q", body["error"], tc.message)
			}
			detail := strings.ReplaceAll(tc.detail, "rid-1", reqID)
			if tc.detail != "" && body["detail"] != detail {
				t.Errorf("detail %q, want %q", body["detail"], detail)
			}
			if strings.Contains(w.Body.String(), "secret") || strings.Contains(w.Body.String(), "password") || strings.Contains(w.Body.String(), "10.0.0.1") {
				t.Errorf("internal detail leaked: %s", w.Body)
			}
			if tc.status >= 500 {
				if logs.FilterMessage("request failed").Len() != 1 {
					t.Errorf("5xx not logged")
				}
			} else if logs.Len() != 0 {
				t.Errorf("client error logged: %v", logs.All())
			}
		})
	}
}

func TestScrapeErrorCaddyfile(t *testing.T) {
	for input, want := range map[string]string{
		"scrape_error":            "",
		"scrape_error x":          "wrong argument count",
		"scrape_error {\n foo\n}": "unrecognized subdirective: foo",
	} {
		err := new(ScrapeError).UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
		if (err == nil) != (want == "") || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("%q: error %v, want %q", input, err, want)
		}
	}
}

func TestCatalogueComplete(t *testing.T) {
	for code, e := range Catalogue {
		if e.Ko == "" || e.En == "" || e.Status < 400 {
			t.Errorf("%s: incomplete entry %+v", code, e)
		}
	}
	for status, code := range statusCodes {
		if _, ok := Catalogue[code]; !ok {
			t.Errorf("status %d maps to %s, not in the catalogue", status, code)
		}
	}
	for wc, code := range requestErrorCodes {
		if _, ok := Catalogue[code]; !ok {
			t.Errorf("worker code %s maps to %s, not in the catalogue", wc, code)
		}
	}
}

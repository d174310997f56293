package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/scrapegate/scrapegate/rpc"
)

// fakeCaller answers calls with a fixed reply and error, and records them.
type fakeCaller struct {
	reply rpc.Reply
	err   error
	// wait, when set, blocks the call until ctx is done and returns
	// err (or the ctx's error mapped like the rpc client does).
	wait  bool
	tasks []rpc.Task
	ctxs  []context.Context
}

func (f *fakeCaller) Call(ctx context.Context, t rpc.Task) (rpc.Reply, error) {
	f.tasks = append(f.tasks, t)
	f.ctxs = append(f.ctxs, ctx)
	if f.wait {
		<-ctx.Done()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return rpc.Reply{}, fmt.Errorf("%w while waiting for reply", rpc.ErrTimeout)
		}
		return rpc.Reply{}, fmt.Errorf("%w: %v", rpc.ErrCanceled, ctx.Err())
	}
	return f.reply, f.err
}

// newTestHandler returns a provisioned-like handler around caller, and the
// observed logs.
func newTestHandler(t *testing.T, caller caller) (*ScrapeRPC, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zap.InfoLevel)
	h := &ScrapeRPC{
		MaxBody:        DefaultMaxBody,
		DefaultTimeout: caddy.Duration(DefaultTimeout),
		MaxTimeout:     caddy.Duration(DefaultMaxTimeout),
		caller:         caller,
		stats:          new(callStats),
		logger:         zap.New(core),
	}
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	return h, logs
}

// newTestRequest builds a request with what Caddy's server puts in its
// context (replacer, vars, extra log fields).
func newTestRequest(method, body string, hdr map[string]string) (*http.Request, *caddy.Replacer) {
	r := httptest.NewRequest(method, "/scrape", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		if v == "" {
			r.Header.Del(k)
		} else {
			r.Header.Set(k, v)
		}
	}
	ctx := context.WithValue(r.Context(), caddyhttp.VarsCtxKey, map[string]any{})
	ctx = context.WithValue(ctx, caddyhttp.ExtraLogFieldsCtxKey, new(caddyhttp.ExtraLogFields))
	r = r.WithContext(ctx)
	repl := caddyhttp.NewTestReplacer(r)
	return r, repl
}

// serve runs the handler and renders an error the way handle_errors with
// scrape_error would.
func serve(t *testing.T, h *ScrapeRPC, r *http.Request) (int, []byte, error) {
	t.Helper()
	w := httptest.NewRecorder()
	err := h.ServeHTTP(w, r, nil)
	if err != nil {
		status, body := renderError(err, r.Header.Get("Accept-Language"), "rid")
		b, _ := json.Marshal(body)
		return status, b, err
	}
	return w.Code, w.Body.Bytes(), nil
}

func strp(s string) *string { return &s }

func TestScrapeRPCErrors(t *testing.T) {
	big := `{"script_name":"echo","parameters":{"x":"` + strings.Repeat("a", DefaultMaxBody) + `"}}`
	cases := []struct {
		name   string
		method string
		body   string
		hdr    map[string]string
		caller *fakeCaller
		status int
		code   string
		detail string // substring of the detail
	}{
		{name: "get", method: "GET", status: 405, code: CodeMethodNotAllowed},
		{name: "no content type", body: `{}`, hdr: map[string]string{"Content-Type": ""}, status: 415, code: CodeUnsupportedMediaType},
		{name: "text content type", body: `{}`, hdr: map[string]string{"Content-Type": "text/plain"}, status: 415, code: CodeUnsupportedMediaType},
		{name: "latin1 charset", body: `{}`, hdr: map[string]string{"Content-Type": "application/json; charset=latin1"}, status: 415, code: CodeUnsupportedMediaType},
		{name: "too large", body: big, status: 413, code: CodeBodyTooLarge},
		{name: "empty", body: ``, status: 400, code: CodeMalformedJSON},
		{name: "not json", body: `script_name=echo`, status: 400, code: CodeMalformedJSON},
		{name: "cut json", body: `{"script_name":"echo"`, status: 400, code: CodeMalformedJSON},
		{name: "trailing garbage", body: `{"script_name":"echo"} x`, status: 400, code: CodeMalformedJSON},
		{name: "array", body: `[]`, status: 422, code: CodeValidationError, detail: "body: must be a JSON object"},
		{name: "null body", body: `null`, status: 422, code: CodeValidationError, detail: "body: must be a JSON object"},
		{name: "string body", body: `"echo"`, status: 422, code: CodeValidationError, detail: "body: must be a JSON object"},
		{name: "escaped unknown key", body: `{"script_name":"echo","f\u006fo":1,"foo":2}`, status: 422, code: CodeValidationError, detail: `unknown field "foo"`},
		{name: "unknown field", body: `{"script_name":"echo","foo":1}`, status: 422, code: CodeValidationError, detail: `unknown field "foo"`},
		{name: "case matters", body: `{"Script_Name":"echo"}`, status: 422, code: CodeValidationError, detail: `unknown field "Script_Name"`},
		{name: "missing name", body: `{}`, status: 422, code: CodeValidationError, detail: "script_name: required"},
		{name: "empty name", body: `{"script_name":""}`, status: 422, code: CodeValidationError, detail: "script_name: required"},
		{name: "bad name", body: `{"script_name":"a b"}`, status: 422, code: CodeValidationError, detail: "script_name: must match"},
		{name: "escaped bad name", body: `{"script_name":"a\u002fb"}`, status: 422, code: CodeValidationError, detail: "script_name: must match"},
		{name: "long name", body: `{"script_name":"` + strings.Repeat("a", 129) + `"}`, status: 422, code: CodeValidationError, detail: "at most 128"},
		{name: "name not string", body: `{"script_name":5}`, status: 422, code: CodeValidationError, detail: "script_name: must be a string"},
		{name: "version not string", body: `{"script_name":"echo","script_version":1}`, status: 422, code: CodeValidationError, detail: "script_version: must be a string or null"},
		{name: "empty version", body: `{"script_name":"echo","script_version":""}`, status: 422, code: CodeValidationError, detail: "script_version"},
		{name: "parameters array", body: `{"script_name":"echo","parameters":[1]}`, status: 422, code: CodeValidationError, detail: "parameters: must be an object"},
		{name: "timeout zero", body: `{"script_name":"echo","timeout":0}`, status: 422, code: CodeValidationError, detail: "timeout: must be between 1 and 3600"},
		{name: "timeout big", body: `{"script_name":"echo","timeout":3601}`, status: 422, code: CodeValidationError, detail: "timeout: must be between 1 and 3600"},
		{name: "timeout huge", body: `{"script_name":"echo","timeout":1e400}`, status: 422, code: CodeValidationError, detail: "timeout: must be between"},
		{name: "timeout fraction", body: `{"script_name":"echo","timeout":1.5}`, status: 422, code: CodeValidationError, detail: "timeout: must be an integer"},
		{name: "timeout string", body: `{"script_name":"echo","timeout":"30"}`, status: 422, code: CodeValidationError, detail: "timeout: must be an integer"},
		{
			name: "every problem", body: `{"b":1,"a":2,"script_name":"?","timeout":-1,"parameters":"x"}`,
			status: 422, code: CodeValidationError,
			detail: `unknown field "a"; unknown field "b"; script_name: must match ^[a-zA-Z0-9_-]+$; parameters: must be an object; timeout: must be between 1 and 3600`,
		},
		{name: "unknown script", body: `{"script_name":"nope"}`, caller: &fakeCaller{err: fmt.Errorf("publishing: %w", rpc.ErrUnknownScript)}, status: 404, code: CodeUnknownScript},
		{name: "no workers", body: `{"script_name":"echo"}`, caller: &fakeCaller{err: rpc.ErrNoWorkers}, status: 503, code: CodeNoWorkers},
		{name: "broker down", body: `{"script_name":"echo"}`, caller: &fakeCaller{err: rpc.ErrBrokerUnavailable}, status: 503, code: CodeBrokerUnavailable},
		{name: "nacked", body: `{"script_name":"echo"}`, caller: &fakeCaller{err: rpc.ErrNacked}, status: 503, code: CodeBrokerUnavailable},
		{name: "closed", body: `{"script_name":"echo"}`, caller: &fakeCaller{err: rpc.ErrClosed}, status: 503, code: CodeBrokerUnavailable},
		{name: "timeout", body: `{"script_name":"echo","timeout":1}`, caller: &fakeCaller{wait: true}, status: 504, code: CodeTimeout, detail: "no reply within 1 s"},
		{name: "surprise", body: `{"script_name":"echo"}`, caller: &fakeCaller{err: errors.New("amqp internals /etc/secret")}, status: 500, code: CodeInternalError, detail: "request id rid"},
		{
			name: "unknown version", body: `{"script_name":"echo","script_version":"9.9"}`,
			caller: &fakeCaller{
				reply: rpc.Reply{Status: rpc.StatusFailed, ErrorCode: strp(rpc.CodeUnknownVersion), Error: strp("echo has versions 1.0.0")},
				err:   &rpc.TaskError{Code: rpc.CodeUnknownVersion, Message: "echo has versions 1.0.0"},
			},
			status: 404, code: CodeUnknownVersion, detail: "echo has versions 1.0.0",
		},
		{
			name: "invalid parameters", body: `{"script_name":"echo","parameters":{"url":1}}`,
			caller: &fakeCaller{
				reply: rpc.Reply{Status: rpc.StatusFailed, ErrorCode: strp(rpc.CodeInvalidParameters)},
				err:   fmt.Errorf("call: %w", &rpc.TaskError{Code: rpc.CodeInvalidParameters, Message: "url: must be a string"}),
			},
			status: 422, code: CodeInvalidParameters, detail: "url: must be a string",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.caller
			if c == nil {
				c = &fakeCaller{err: errors.New("must not be called")}
			}
			h, logs := newTestHandler(t, c)
			method := tc.method
			if method == "" {
				method = "POST"
			}
			r, repl := newTestRequest(method, tc.body, tc.hdr)
			status, body, err := serve(t, h, r)
			if err == nil {
				t.Fatalf("no error; status %d body %s", status, body)
			}
			var eb ErrorBody
			if err := json.Unmarshal(body, &eb); err != nil {
				t.Fatal(err)
			}
			if status != tc.status || eb.Code != tc.code {
				t.Fatalf("got %d %s (%s), want %d %s", status, eb.Code, eb.Detail, tc.status, tc.code)
			}
			if !strings.Contains(eb.Detail, tc.detail) {
				t.Errorf("detail %q does not contain %q", eb.Detail, tc.detail)
			}
			if strings.Contains(string(body), "secret") {
				t.Errorf("internal detail leaked: %s", body)
			}
			if got, _ := repl.GetString("http.scrape_rpc.error_code"); got != tc.code {
				t.Errorf("error_code placeholder %q, want %q", got, tc.code)
			}
			if n := logs.FilterMessage("scrape call").Len(); n != 1 {
				t.Errorf("%d log lines, want 1", n)
			}
			entry := logs.All()[0].ContextMap()
			if entry["outcome"] != tc.code || entry["client_id"] != AnonymousClient || entry["request_id"] == "" {
				t.Errorf("log fields %v", entry)
			}
			if tc.code == CodeInternalError && !strings.Contains(fmt.Sprint(entry["error"]), "secret") {
				t.Errorf("internal cause missing from the log: %v", entry)
			}
		})
	}
}

func TestScrapeRPCSuccess(t *testing.T) {
	completed := time.Date(2026, 11, 26, 2, 0, 0, 12e6, time.UTC)
	c := &fakeCaller{reply: rpc.Reply{
		Status: rpc.StatusCompleted, Data: json.RawMessage(`{"url":"https://example.com"}`),
		ExecutionTime: 0.012, CompletedAt: completed, WorkerID: "w1",
	}}
	h, logs := newTestHandler(t, c)
	r, repl := newTestRequest("POST", `{"script_name":"echo","script_version":null,"parameters":{"url":"https://example.com"},"timeout":30}`,
		map[string]string{"Content-Type": "application/json; charset=UTF-8"})
	repl.Set("http.auth.user.id", "client-7")
	before := time.Now()
	status, body, err := serve(t, h, r)
	if err != nil || status != 200 {
		t.Fatalf("status %d err %v body %s", status, err, body)
	}
	var resp ScrapeResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	reqID, _ := repl.GetString("http.request.uuid")
	if resp.RequestID != reqID || resp.Status != "completed" || string(resp.Data) != `{"url":"https://example.com"}` ||
		resp.Error != nil || resp.ErrorCode != nil || resp.ExecutionTime != 0.012 || !resp.CompletedAt.Equal(completed) {
		t.Errorf("response %+v", resp)
	}
	if !strings.Contains(string(body), `"error":null`) || !strings.Contains(string(body), `"error_code":null`) {
		t.Errorf("error fields must be null: %s", body)
	}
	task := c.tasks[0]
	if task.RequestID != reqID || task.ScriptName != "echo" || task.ScriptVersion != nil || task.Timeout != 30 ||
		task.ClientID != "client-7" || string(task.Parameters) != `{"url":"https://example.com"}` || task.CreatedAt.Before(before.Add(-time.Second)) {
		t.Errorf("task %+v", task)
	}
	dl, ok := c.ctxs[0].Deadline()
	if !ok || time.Until(dl) < 29*time.Second || time.Until(dl) > 30*time.Second {
		t.Errorf("call deadline %v", dl)
	}
	for key, want := range map[string]string{
		"http.scrape_rpc.request_id": reqID, "http.scrape_rpc.client_id": "client-7", "http.scrape_rpc.script": "echo",
		"http.scrape_rpc.outcome": "completed", "http.scrape_rpc.error_code": "", "http.scrape_rpc.worker_id": "w1",
		"http.scrape_rpc.duration_ms": "0",
	} {
		if v, ok := repl.Get(key); !ok || fmt.Sprint(v) != want {
			t.Errorf("{%s} = %v %v, want %q", key, v, ok, want)
		}
	}
	if got := repl.ReplaceAll("{http.scrape_rpc.nope}", "?"); got != "?" {
		t.Errorf("unknown placeholder resolved to %q", got)
	}
	if got := logs.FilterMessage("scrape call").All()[0].ContextMap(); got["outcome"] != "completed" || got["client_id"] != "client-7" || got["script"] != "echo" || got["worker_id"] != "w1" {
		t.Errorf("log %v", got)
	}
}

func TestScrapeRPCDefaults(t *testing.T) {
	c := &fakeCaller{reply: rpc.Reply{Status: rpc.StatusCompleted, Data: json.RawMessage(`{}`)}}
	h, _ := newTestHandler(t, c)
	r, _ := newTestRequest("POST", `{"script_name":"echo","parameters":null,"timeout":null}`, nil)
	if status, body, err := serve(t, h, r); err != nil || status != 200 {
		t.Fatalf("status %d err %v body %s", status, err, body)
	}
	task := c.tasks[0]
	if string(task.Parameters) != `{}` || task.Timeout != 300 || task.ClientID != AnonymousClient {
		t.Errorf("task %+v", task)
	}
	r, _ = newTestRequest("POST", `{"script_name":"echo","timeout":3e1,"script_version":"1.0.0"}`, nil)
	if status, body, err := serve(t, h, r); err != nil || status != 200 {
		t.Fatalf("status %d err %v body %s", status, err, body)
	}
	if task := c.tasks[1]; task.Timeout != 30 || task.ScriptVersion == nil || *task.ScriptVersion != "1.0.0" {
		t.Errorf("task %+v", task)
	}
}

func TestScrapeRPCFailedReply(t *testing.T) {
	for _, code := range []string{rpc.CodeScriptError, rpc.CodeScriptTimeout, rpc.CodeOutputTooLarge, rpc.CodeWorkerError, ""} {
		t.Run(code, func(t *testing.T) {
			reply := rpc.Reply{Status: rpc.StatusFailed, Error: strp("boom")}
			want := rpc.CodeScriptError
			if code != "" {
				reply.ErrorCode = strp(code)
				want = code
			}
			c := &fakeCaller{reply: reply, err: &rpc.TaskError{Code: reply.Code(), Message: "boom"}}
			h, logs := newTestHandler(t, c)
			r, repl := newTestRequest("POST", `{"script_name":"echo"}`, nil)
			status, body, err := serve(t, h, r)
			if err != nil || status != 200 {
				t.Fatalf("status %d err %v", status, err)
			}
			var resp ScrapeResponse
			if err := json.Unmarshal(body, &resp); err != nil {
				t.Fatal(err)
			}
			if resp.Status != "failed" || resp.ErrorCode == nil || *resp.ErrorCode != want || resp.Error == nil || *resp.Error != "boom" {
				t.Errorf("response %s", body)
			}
			if got, _ := repl.GetString("http.scrape_rpc.error_code"); got != want {
				t.Errorf("placeholder %q", got)
			}
			if got := logs.All()[0].ContextMap(); got["outcome"] != "failed" || got["error_code"] != want {
				t.Errorf("log %v", got)
			}
		})
	}
}

func TestScrapeRPCClientGone(t *testing.T) {
	c := &fakeCaller{wait: true}
	h, logs := newTestHandler(t, c)
	r, _ := newTestRequest("POST", `{"script_name":"echo"}`, nil)
	ctx, cancel := context.WithCancel(r.Context())
	r = r.WithContext(ctx)
	time.AfterFunc(20*time.Millisecond, cancel)
	status, _, err := serve(t, h, r)
	if status != StatusClientClosedRequest || err == nil {
		t.Fatalf("status %d err %v", status, err)
	}
	if got := logs.All()[0].ContextMap(); got["outcome"] != CodeClientClosedRequest {
		t.Errorf("log %v", got)
	}
}

func TestScrapeRPCCaddyfile(t *testing.T) {
	cases := []struct {
		name  string
		input string
		want  ScrapeRPC
		err   string
	}{
		{name: "bare", input: `scrape_rpc`},
		{name: "empty block", input: "scrape_rpc {\n}"},
		{
			name:  "all",
			input: "scrape_rpc {\n max_body 2MiB\n default_timeout 30s\n max_timeout 10m\n}",
			want:  ScrapeRPC{MaxBody: 2 << 20, DefaultTimeout: caddy.Duration(30 * time.Second), MaxTimeout: caddy.Duration(10 * time.Minute)},
		},
		{name: "plain bytes", input: "scrape_rpc {\n max_body 4096\n}", want: ScrapeRPC{MaxBody: 4096}},
		{name: "argument", input: `scrape_rpc foo`, err: "wrong argument count"},
		{name: "unknown", input: "scrape_rpc {\n pool default\n}", err: "unrecognized subdirective: pool"},
		{name: "duplicate", input: "scrape_rpc {\n max_body 1MiB\n max_body 2MiB\n}", err: "duplicate subdirective: max_body"},
		{name: "missing value", input: "scrape_rpc {\n max_body\n}", err: "wrong argument count"},
		{name: "extra value", input: "scrape_rpc {\n max_body 1 2\n}", err: "wrong argument count"},
		{name: "bad size", input: "scrape_rpc {\n max_body lots\n}", err: `max_body: bad size "lots"`},
		{name: "bad duration", input: "scrape_rpc {\n default_timeout soon\n}", err: `default_timeout: bad duration "soon"`},
		{name: "negative duration", input: "scrape_rpc {\n max_timeout -1s\n}", err: "max_timeout: must be positive"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var h ScrapeRPC
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.MaxBody != tc.want.MaxBody || h.DefaultTimeout != tc.want.DefaultTimeout || h.MaxTimeout != tc.want.MaxTimeout {
				t.Errorf("got %+v, want %+v", h, tc.want)
			}
		})
	}
}

func TestScrapeRPCValidate(t *testing.T) {
	cases := []struct {
		name string
		h    ScrapeRPC
		err  string
	}{
		{name: "default above max", h: ScrapeRPC{DefaultTimeout: caddy.Duration(time.Hour), MaxTimeout: caddy.Duration(time.Minute)}, err: "default_timeout"},
		{name: "fraction", h: ScrapeRPC{DefaultTimeout: caddy.Duration(1500 * time.Millisecond), MaxTimeout: caddy.Duration(time.Minute)}, err: "default_timeout"},
		{name: "max fraction", h: ScrapeRPC{DefaultTimeout: caddy.Duration(time.Second), MaxTimeout: caddy.Duration(500 * time.Millisecond)}, err: "max_timeout"},
		{name: "ok", h: ScrapeRPC{DefaultTimeout: caddy.Duration(time.Second), MaxTimeout: caddy.Duration(time.Second)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.h.Validate()
			if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("error %v, want %q", err, tc.err)
			}
		})
	}
}

func TestDecodeScrapeRequestShapes(t *testing.T) {
	cases := []struct {
		body    string
		name    string
		version string
		params  string
		timeout time.Duration
	}{
		{body: ` { "script_name" : "echo" } `, name: "echo", params: `{}`, timeout: DefaultTimeout},
		{body: `{"script_n\u0061me":"e\u0063ho","parameters":{"a":[1,{"b":"}]\""}],"c":null} ,"timeout":7}`, name: "echo", params: `{"a":[1,{"b":"}]\""}],"c":null}`, timeout: 7 * time.Second},
		{body: "{\n\t\"timeout\": 1e1,\r\n\"script_version\":\"1.0.0\",\"script_name\":\"a-b_C9\"}", name: "a-b_C9", version: "1.0.0", params: `{}`, timeout: 10 * time.Second},
		{body: `{"script_name":"x","script_name":"echo"}`, name: "echo", params: `{}`, timeout: DefaultTimeout},
	}
	for _, tc := range cases {
		req, err := decodeScrapeRequest([]byte(tc.body), DefaultTimeout, DefaultMaxTimeout)
		if err != nil {
			t.Errorf("%s: %v", tc.body, err)
			continue
		}
		version := ""
		if req.scriptVersion != nil {
			version = *req.scriptVersion
		}
		if req.scriptName != tc.name || version != tc.version || string(req.parameters) != tc.params || req.timeout != tc.timeout {
			t.Errorf("%s: got %+v", tc.body, req)
		}
	}
}

func TestAppendResultMatchesEncodingJSON(t *testing.T) {
	created := time.Date(2026, 11, 26, 2, 0, 0, 123456789, time.FixedZone("KST", 9*3600))
	completed := time.Date(2026, 11, 26, 2, 0, 1, 0, time.UTC)
	cases := []rpc.Reply{
		{Status: rpc.StatusCompleted, Data: json.RawMessage(`{"url":"https://example.com","n":[1,2.5,null]}`), ExecutionTime: 0.012, CompletedAt: completed},
		{Status: rpc.StatusCompleted, Data: json.RawMessage("{ \"a\" : [ 1 , 2 ]\n}"), ExecutionTime: 6.2e-7, CompletedAt: completed},
		{Status: rpc.StatusCompleted, ExecutionTime: 0, CompletedAt: completed},
		{Status: rpc.StatusCompleted, Data: json.RawMessage(`"\u00e9\n"`), ExecutionTime: 1e22, CompletedAt: completed},
		{Status: rpc.StatusFailed, Error: strp("boom \"quoted\" \\ \n\t\x01 \b\f é 한국어 \u2028 \xff"), ErrorCode: strp(rpc.CodeScriptTimeout), ExecutionTime: 30, CompletedAt: completed},
		{Status: rpc.StatusFailed, CompletedAt: completed},
	}
	for i, reply := range cases {
		got := appendResult(nil, "rid-\"1", created, &reply)
		resp := ScrapeResponse{
			RequestID: "rid-\"1", Status: string(reply.Status), Data: reply.Data,
			ExecutionTime: reply.ExecutionTime, CreatedAt: created.UTC(), CompletedAt: reply.CompletedAt,
		}
		if len(resp.Data) == 0 {
			resp.Data = json.RawMessage("null")
		}
		if reply.Status == rpc.StatusFailed {
			code := reply.Code()
			msg := ""
			if reply.Error != nil {
				msg = *reply.Error
			}
			resp.Error, resp.ErrorCode = &msg, &code
		}
		want, err := json.Marshal(&resp)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want)+"\n" {
			t.Errorf("case %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

func FuzzDecodeScrapeRequest(f *testing.F) {
	for _, s := range []string{`{"script_name":"echo"}`, `{"script_name":"echo","timeout":30,"parameters":{"a":[1]}}`, `[]`, `null`, `{"timeout":1e9}`, `{"script_name":"\u00e9"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeScrapeRequest(body, DefaultTimeout, DefaultMaxTimeout)
		if err != nil {
			ce, ok := codeOf(err)
			if !ok || (ce.Code != CodeMalformedJSON && ce.Code != CodeValidationError) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if scriptNameProblem(req.scriptName) != "" || req.timeout < time.Second || req.timeout > DefaultMaxTimeout || !json.Valid(req.parameters) || req.parameters[0] != '{' {
			t.Fatalf("accepted a bad request: %+v", req)
		}
	})
}

// BenchmarkScrapeRPC measures the handler's own work per call (decoding,
// validation, the result's encoding, placeholders, the log line to a
// discarding JSON logger), with a fake caller in place of the broker.
func BenchmarkScrapeRPC(b *testing.B) {
	c := &benchCaller{reply: rpc.Reply{
		Status: rpc.StatusCompleted, Data: json.RawMessage(`{"url":"https://example.com"}`),
		ExecutionTime: 0.000062, CompletedAt: time.Now(), WorkerID: "w1",
	}}
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	h := &ScrapeRPC{
		MaxBody: DefaultMaxBody, DefaultTimeout: caddy.Duration(DefaultTimeout), MaxTimeout: caddy.Duration(DefaultMaxTimeout),
		caller: c, stats: new(callStats), logger: zap.New(zapcore.NewCore(enc, zapcore.AddSync(io.Discard), zap.InfoLevel)),
	}
	body := `{"script_name":"echo","parameters":{"url":"https://example.com"},"timeout":30}`
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		r, _ := newTestRequest("POST", body, nil)
		clear(w.h)
		if err := h.ServeHTTP(w, r, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// benchCaller answers every call with one reply, without recording.
type benchCaller struct{ reply rpc.Reply }

func (f *benchCaller) Call(context.Context, rpc.Task) (rpc.Reply, error) { return f.reply, nil }

// discardWriter is a ResponseWriter that keeps nothing.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/scrapegate/scrapegate/rpc"
)

// fakeCaller records the task it was given and answers with rep and err.
type fakeCaller struct {
	got rpc.Task
	rep rpc.Reply
	err error
}

func (f *fakeCaller) Call(_ context.Context, t rpc.Task) (rpc.Reply, error) {
	f.got = t
	return f.rep, f.err
}

func post(t *testing.T, c caller, body string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	scrape(c, w, httptest.NewRequest(http.MethodPost, "/scrape", strings.NewReader(body)))
	return w
}

func TestScrapeAnswersTheReply(t *testing.T) {
	f := &fakeCaller{rep: rpc.Reply{Status: rpc.StatusCompleted, Data: json.RawMessage(`{ "url": "https://example.com" }`)}}
	w := post(t, f, `{"script_name":"echo","parameters":{"url":"https://example.com"},"timeout":30}`)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d, body %s", w.Code, w.Body)
	}
	if f.got.ScriptName != "echo" || f.got.Timeout != 30 || string(f.got.Parameters) != `{"url":"https://example.com"}` || f.got.RequestID == "" {
		t.Fatalf("task %+v", f.got)
	}
	var out struct {
		RequestID string          `json:"request_id"`
		Status    string          `json:"status"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		t.Fatalf("body %s: %v", w.Body, err)
	}
	if out.RequestID != f.got.RequestID || out.Status != "completed" || string(out.Data) != `{"url":"https://example.com"}` {
		t.Fatalf("answer %+v", out)
	}
}

func TestScrapeAnswersAFailedTask(t *testing.T) {
	f := &fakeCaller{rep: rpc.Reply{Status: rpc.StatusFailed}, err: &rpc.TaskError{Code: rpc.CodeScriptError}}
	w := post(t, f, `{"script_name":"echo","parameters":{},"timeout":5}`)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"status":"failed","data":null`) {
		t.Fatalf("status %d, body %s", w.Code, w.Body)
	}
}

func TestScrapeRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		err        error
		want       int
	}{
		{"not JSON", `{"script_name":`, nil, http.StatusUnprocessableEntity},
		{"no script", `{"parameters":{},"timeout":5}`, nil, http.StatusUnprocessableEntity},
		{"no timeout", `{"script_name":"echo","parameters":{}}`, nil, http.StatusUnprocessableEntity},
		{"call failed", `{"script_name":"echo","parameters":{},"timeout":5}`, errors.New("broker down"), http.StatusServiceUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if w := post(t, &fakeCaller{err: tc.err}, tc.body); w.Code != tc.want {
				t.Fatalf("status %d, want %d (body %s)", w.Code, tc.want, w.Body)
			}
		})
	}
}

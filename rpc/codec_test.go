package rpc

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// FuzzDecodeReply: decodeReply agrees with json.Unmarshal on every valid
// body whose member names are the contract's exact names.
func FuzzDecodeReply(f *testing.F) {
	for _, s := range []string{
		`{"request_id":"r1","status":"completed","data":{"a":[1,"x"]},"error":null,"error_code":null,"execution_time":0.012,"completed_at":"2026-11-26T02:00:00.012Z","worker_id":"w"}`,
		`{"request_id":"r2","status":"failed","data":null,"error":"boom \u00e9","error_code":"SCRIPT_ERROR","execution_time":1e-7,"completed_at":"2026-11-26T02:00:00+09:00","worker_id":"w"}`,
		`{"status":1}`, `{"execution_time":"1"}`, `{"completed_at":"yesterday"}`, `null`, ` null `, `[]`, `{"data":  [ 1 , 2 ] }`,
		`{"execution_time":1e400}`, `{"error":null,"error":"x"}`, `{"Status":"failed"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if !json.Valid(body) {
			var r Reply
			if decodeReply(body, &r) == nil {
				t.Fatalf("invalid JSON %q decoded", body)
			}
			return
		}
		var probe map[string]json.RawMessage
		if json.Unmarshal(body, &probe) == nil {
			for k := range probe {
				for _, name := range []string{"request_id", "status", "data", "error", "error_code", "execution_time", "completed_at", "worker_id"} {
					if k != name && strings.EqualFold(k, name) {
						return // encoding/json matches names without case; decodeReply does not
					}
				}
			}
		}
		var want, got Reply
		wantErr := json.Unmarshal(body, &want)
		gotErr := decodeReply(body, &got)
		if (wantErr == nil) != (gotErr == nil) {
			t.Fatalf("%s: encoding/json: %v; decodeReply: %v", body, wantErr, gotErr)
		}
		if wantErr != nil {
			return
		}
		if !want.CompletedAt.Equal(got.CompletedAt) {
			t.Fatalf("%s: completed_at %v, want %v", body, got.CompletedAt, want.CompletedAt)
		}
		want.CompletedAt, got.CompletedAt = time.Time{}, time.Time{}
		if !reflect.DeepEqual(want, got) {
			t.Fatalf("%s:\n got %+v\nwant %+v", body, got, want)
		}
	})
}

// FuzzAppendTask: appendTask writes what json.Marshal writes, up to the
// HTML escaping encoding/json applies inside raw parameters.
func FuzzAppendTask(f *testing.F) {
	f.Add("r1", "echo", "", false, `{"url":"https://example.com/?a=1&b=<2>"}`, 30, "client \u2028", int64(1795673596457560000))
	f.Add("", "", "1.0.0", true, ` { "a" : [ 1 , 2 ] } `, 0, "", int64(0))
	f.Add("x\xff", "s", "v", true, `null`, -1, "\x00", int64(-1))
	f.Fuzz(func(t *testing.T, id, script, version string, hasVersion bool, params string, timeout int, client string, created int64) {
		task := Task{RequestID: id, ScriptName: script, Parameters: json.RawMessage(params), Timeout: timeout,
			ClientID: client, CreatedAt: time.Unix(0, created).UTC()}
		if hasVersion {
			task.ScriptVersion = &version
		}
		got, err := appendTask(nil, &task)
		want, wantErr := json.Marshal(&task)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("%+v: appendTask: %v; json.Marshal: %v", task, err, wantErr)
		}
		if err != nil {
			return
		}
		var a, b any
		if json.Unmarshal(got, &a) != nil || json.Unmarshal(want, &b) != nil || !reflect.DeepEqual(a, b) {
			t.Fatalf("%+v:\n got %s\nwant %s", task, got, want)
		}
	})
}

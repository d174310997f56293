package jsonraw

import (
	"encoding/json"
	"testing"
)

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "quote\" back\\ nl\n <&> \u2028\u2029", "\xff\xfe", "한국어", "\x00\x1f\x7f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := AppendString(nil, s); string(got) != string(want) {
			t.Fatalf("%q: got %s, want %s", s, got, want)
		}
	})
}

func FuzzScanObject(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1,"b":"x\"}","c":{"d":[1,{"e":"]"}]},"a":2}`, ` { "k\u0041" : true , "z" : null } `, `[1]`, `"s"`, "{\"\xe4\":0}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if !json.Valid(body) {
			return
		}
		var want map[string]json.RawMessage
		wantErr := json.Unmarshal(body, &want)
		got := map[string]string{}
		isObject := ScanObject(body, func(key, raw []byte) { got[string(key)] = string(raw) })
		if isObject != (wantErr == nil && want != nil) {
			t.Fatalf("object %v, encoding/json: %v %v", isObject, want, wantErr)
		}
		if !isObject {
			return
		}
		if len(got) != len(want) {
			t.Fatalf("keys %v, want %v", got, want)
		}
		for k, v := range want {
			if got[k] != string(v) {
				t.Fatalf("%q: %s, want %s", k, got[k], v)
			}
		}
	})
}

package rpc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/scrapegate/scrapegate/internal/jsonraw"
)

// The task and reply bodies are encoded and decoded on every call; these
// do it without encoding/json's reflection. The fuzz tests compare them with
// encoding/json: decodeReply gives json.Unmarshal's result (names matched
// exactly); appendTask writes JSON that decodes to what json.Marshal's does
// (the bytes differ only inside the raw parameters, which json.Marshal
// re-escapes for HTML: <, >, &, U+2028, U+2029).

// appendTask appends the JSON body of t to b. t.Parameters must be valid
// JSON (nil is encoded as null).
func appendTask(b []byte, t *Task) ([]byte, error) {
	b = append(b, `{"request_id":`...)
	b = jsonraw.AppendString(b, t.RequestID)
	b = append(b, `,"script_name":`...)
	b = jsonraw.AppendString(b, t.ScriptName)
	b = append(b, `,"script_version":`...)
	if t.ScriptVersion == nil {
		b = append(b, "null"...)
	} else {
		b = jsonraw.AppendString(b, *t.ScriptVersion)
	}
	b = append(b, `,"parameters":`...)
	if t.Parameters == nil {
		b = append(b, "null"...)
	} else if !json.Valid(t.Parameters) {
		return b, errors.New("parameters: not valid JSON")
	} else {
		b = jsonraw.AppendCompact(b, t.Parameters)
	}
	b = append(b, `,"timeout":`...)
	b = strconv.AppendInt(b, int64(t.Timeout), 10)
	b = append(b, `,"client_id":`...)
	b = jsonraw.AppendString(b, t.ClientID)
	b = append(b, `,"created_at":`...)
	ts, err := t.CreatedAt.MarshalJSON()
	if err != nil {
		return b, fmt.Errorf("created_at: %w", err)
	}
	b = append(b, ts...)
	return append(b, '}'), nil
}

// decodeReply decodes a reply body into r as json.Unmarshal would, except
// that member names match exactly (encoding/json also accepts other cases)
// and r.Data aliases body instead of copying it.
func decodeReply(body []byte, r *Reply) error {
	if !json.Valid(body) {
		return errors.New("reply is not valid JSON")
	}
	var err error
	field := func(name string, e error) {
		if e != nil && err == nil {
			err = fmt.Errorf("reply field %s: %w", name, e)
		}
	}
	isObject := jsonraw.ScanObject(body, func(key, raw []byte) {
		switch string(key) {
		case "request_id":
			field("request_id", rawString(raw, &r.RequestID))
		case "status":
			var s string
			field("status", rawString(raw, &s))
			if !jsonraw.IsNull(raw) {
				r.Status = Status(s)
			}
		case "data":
			r.Data = json.RawMessage(raw)
		case "error":
			field("error", rawStringPtr(raw, &r.Error))
		case "error_code":
			field("error_code", rawStringPtr(raw, &r.ErrorCode))
		case "execution_time":
			if jsonraw.IsNull(raw) {
				return
			}
			if !jsonraw.IsNumber(raw) {
				field("execution_time", errors.New("not a number"))
				return
			}
			f, e := strconv.ParseFloat(string(raw), 64)
			field("execution_time", e)
			if e == nil {
				r.ExecutionTime = f
			}
		case "completed_at":
			field("completed_at", r.CompletedAt.UnmarshalJSON(raw))
		case "worker_id":
			field("worker_id", rawString(raw, &r.WorkerID))
		}
	})
	if !isObject && !jsonraw.IsNull(bytes.TrimSpace(body)) {
		return errors.New("reply is not a JSON object")
	}
	return err
}

// rawString decodes a raw JSON string into *s; null leaves *s as it is.
func rawString(raw []byte, s *string) error {
	if jsonraw.IsNull(raw) {
		return nil
	}
	v, ok := jsonraw.String(raw)
	if !ok {
		return errors.New("not a string")
	}
	*s = v
	return nil
}

// rawStringPtr decodes a raw JSON string or null into *p.
func rawStringPtr(raw []byte, p **string) error {
	if jsonraw.IsNull(raw) {
		*p = nil
		return nil
	}
	var v string
	if err := rawString(raw, &v); err != nil {
		return err
	}
	*p = &v
	return nil
}

// taskBufPool recycles the buffers task bodies are encoded in: amqp091 has
// copied the body by the time Publish returns.
var taskBufPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 512)
	return &b
}}

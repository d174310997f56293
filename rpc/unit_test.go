package rpc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestClientConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  ClientConfig
		want string // substring of the error; "" for valid
	}{
		{"minimal", ClientConfig{URL: "amqp://127.0.0.1/"}, ""},
		{"full", ClientConfig{URL: "amqps://u:p@h/v", ReplyMode: ReplyDirect, ReplyQueueExpires: time.Minute, PublishChannels: 8, ReconnectMin: time.Second, ReconnectMax: time.Second}, ""},
		{"no url", ClientConfig{}, "url: required"},
		{"bad scheme", ClientConfig{URL: "http://x/"}, "url: scheme"},
		{"unparsable url hides it", ClientConfig{URL: "amqp://u:secret@[::1"}, "url: not a valid URL"},
		{"bad mode", ClientConfig{URL: "amqp://h/", ReplyMode: "fast"}, "reply_mode"},
		{"short expiry", ClientConfig{URL: "amqp://h/", ReplyQueueExpires: time.Millisecond}, "reply_queue_expires"},
		{"channels", ClientConfig{URL: "amqp://h/", PublishChannels: -1}, "publish_channels"},
		{"instance id", ClientConfig{URL: "amqp://h/", InstanceID: "a b"}, "instance_id"},
		{"backoff", ClientConfig{URL: "amqp://h/", ReconnectMin: time.Second, ReconnectMax: time.Millisecond}, "reconnect_max"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("error leaks the password: %v", err)
			}
		})
	}
}

func TestServerConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  ServerConfig
		want string
	}{
		{"minimal", ServerConfig{URL: "amqp://h/"}, ""},
		{"quorum", ServerConfig{URL: "amqp://h/", QueueType: QueueQuorum, DeliveryLimit: 3}, ""},
		{"no url", ServerConfig{}, "url: required"},
		{"queue type", ServerConfig{URL: "amqp://h/", QueueType: "stream"}, "queue_type"},
		{"concurrency", ServerConfig{URL: "amqp://h/", Concurrency: -2}, "concurrency"},
		{"delivery limit", ServerConfig{URL: "amqp://h/", DeliveryLimit: -1}, "delivery_limit"},
		{"pool", ServerConfig{URL: "amqp://h/", Pool: "a\tb"}, "pool"},
		{"grace", ServerConfig{URL: "amqp://h/", GracePeriod: -time.Second}, "grace_period"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := NewServer(ServerConfig{URL: "amqp://h/"}, nil); err == nil {
		t.Error("NewServer accepted a nil handler")
	}
}

func TestDefaults(t *testing.T) {
	c, err := NewClient(ClientConfig{URL: "amqp://h/"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.cfg.ReplyMode != ReplyQueue || c.cfg.PublishChannels != 4 || c.cfg.ReplyQueueExpires != 60*time.Second ||
		c.cfg.HeartbeatInterval != 5*time.Second || c.replyTo != "scrape.replies."+c.cfg.InstanceID ||
		c.ConnectionName() != "scrapegate-gateway-"+c.cfg.InstanceID {
		t.Errorf("client defaults: %+v", c.cfg)
	}
	if c.Connected() {
		t.Error("connected without Start")
	}
	s, err := NewServer(ServerConfig{URL: "amqp://h/"}, echoHandler)
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.Pool != "default" || s.cfg.Concurrency != 16 || s.cfg.QueueType != QueueClassic || s.cfg.DeliveryLimit != 5 ||
		s.cfg.GracePeriod != 30*time.Second || !strings.HasPrefix(s.cfg.ConnectionName, "scrapegate-worker-") {
		t.Errorf("server defaults: %+v", s.cfg)
	}
}

func TestBackoff(t *testing.T) {
	lo, hi := 100*time.Millisecond, 5*time.Second
	for n := range 20 {
		want := min(lo<<n, hi)
		for range 50 {
			d := backoff(lo, hi, n)
			if d < want/2 || d > want {
				t.Fatalf("attempt %d: %s not in [%s, %s]", n, d, want/2, want)
			}
		}
	}
	if d := backoff(0, 0, 3); d <= 0 || d > time.Millisecond*8 {
		t.Errorf("zero config: %s", d)
	}
}

func TestPending(t *testing.T) {
	p := newPending()
	a, b := &call{ch: make(chan result, 1)}, &call{ch: make(chan result, 1)}
	if !p.put("a", a) || !p.put("b", b) || p.put("a", b) {
		t.Fatal("put: duplicate accepted or fresh refused")
	}
	if p.len() != 2 {
		t.Fatalf("len = %d", p.len())
	}
	if !p.deliver("a", result{kind: outReply, body: []byte("x")}) || p.deliver("a", result{kind: outReply}) {
		t.Fatal("deliver: a delivered twice or not at all")
	}
	if r := <-a.ch; r.kind != outReply || string(r.body) != "x" {
		t.Fatalf("a got %+v", r)
	}
	if p.deliver("zzz", result{kind: outReply}) {
		t.Fatal("delivered to nobody")
	}
	if n := p.failAll(result{kind: outClosed}); n != 1 {
		t.Fatalf("failAll = %d", n)
	}
	if r := <-b.ch; r.kind != outClosed {
		t.Fatalf("b got %+v", r)
	}
	if p.len() != 0 || p.take("b") != nil {
		t.Fatal("not empty")
	}

	// Concurrent use: every id gets exactly its own result.
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprint(i)
			c := &call{ch: make(chan result, 1)}
			p.put(id, c)
			go p.deliver(id, result{kind: outReply, body: []byte(id)})
			if r := <-c.ch; string(r.body) != id {
				t.Errorf("%s got %s", id, r.body)
			}
		}()
	}
	wg.Wait()
}

func TestRegistry(t *testing.T) {
	const iv = time.Second
	r := newRegistry(iv)
	t0 := time.Unix(1000, 0)
	hb := Heartbeat{WorkerID: "w1", Scripts: []ScriptInfo{{Name: "echo", Versions: []string{"1.0.0"}}, {Name: "x", Versions: []string{"2.0.0"}}}}
	if r.noWorkers("echo", t0) {
		t.Fatal("not listening, nothing heard: NO_WORKERS")
	}
	r.listening(t0)
	r.heard(hb, t0)
	r.heard(Heartbeat{WorkerID: "w2", Scripts: []ScriptInfo{{Name: "x", Versions: []string{"1.0.0", "2.0.0"}}}}, t0.Add(2*iv))
	for _, tc := range []struct {
		script string
		at     time.Duration
		want   bool
	}{
		{"echo", iv, false},         // live
		{"echo", 3*iv + 1, true},    // last heard 3 intervals ago, listening for 3 intervals
		{"x", 4 * iv, false},        // w2 is still live
		{"x", 5*iv + 1, true},       // nobody live
		{"unheard", 10 * iv, false}, // never heard of: the broker decides
	} {
		if got := r.noWorkers(tc.script, t0.Add(tc.at)); got != tc.want {
			t.Errorf("noWorkers(%s, +%s) = %v, want %v", tc.script, tc.at, got, tc.want)
		}
	}
	// A link that just came up does not answer NO_WORKERS for three intervals.
	r.listening(t0.Add(4 * iv))
	if r.noWorkers("echo", t0.Add(6*iv)) || !r.noWorkers("echo", t0.Add(7*iv)) {
		t.Error("listening window not respected")
	}
	r.stopped()
	if r.noWorkers("echo", t0.Add(100*iv)) {
		t.Error("NO_WORKERS while not listening")
	}

	sc := r.scripts(t0.Add(2 * iv))
	if len(sc) != 2 || sc[0].Name != "echo" || sc[1].Name != "x" || strings.Join(sc[1].Versions, ",") != "1.0.0,2.0.0" {
		t.Errorf("scripts = %+v", sc)
	}
	ws := r.list(t0.Add(4 * iv))
	if len(ws) != 2 || ws[0].WorkerID != "w1" || ws[0].Live || !ws[1].Live {
		t.Errorf("workers = %+v", ws)
	}
	// Silent workers are eventually forgotten.
	r.heard(Heartbeat{WorkerID: "w3"}, t0.Add(workerForgetIntervals*iv+3*iv))
	if ws := r.list(t0.Add(workerForgetIntervals*iv + 3*iv)); len(ws) != 1 || ws[0].WorkerID != "w3" {
		t.Errorf("after forgetting: %+v", ws)
	}
}

func TestFailureCodes(t *testing.T) {
	deadlineCtx, c1 := context.WithDeadlineCause(context.Background(), time.Now().Add(-time.Second), errTaskDeadline)
	defer c1()
	cancelCtx, c2 := context.WithCancelCause(context.Background())
	c2(errTaskCancelled)
	for _, tc := range []struct {
		name string
		ctx  context.Context
		err  error
		code string
	}{
		{"task error", context.Background(), &TaskError{Code: CodeInvalidParameters, Message: "bad url"}, CodeInvalidParameters},
		{"wrapped task error", deadlineCtx, fmt.Errorf("x: %w", &TaskError{Code: CodeOutputTooLarge}), CodeOutputTooLarge},
		{"deadline", deadlineCtx, errors.New("killed"), CodeScriptTimeout},
		{"cancelled", cancelCtx, errors.New("killed"), CodeCancelled},
		{"other", context.Background(), errors.New("boom"), CodeWorkerError},
	} {
		if code, _ := failure(tc.ctx, tc.err); code != tc.code {
			t.Errorf("%s: code = %s, want %s", tc.name, code, tc.code)
		}
	}
	r := Reply{Status: StatusFailed}
	if r.Code() != CodeScriptError {
		t.Errorf("failed reply without code: %s", r.Code())
	}
}

func TestHeaderInt(t *testing.T) {
	for _, v := range []any{int64(5), int32(5), int16(5), int8(5), int(5), uint64(5), uint32(5), uint16(5), uint8(5), float64(5), float32(5), "5"} {
		if n, ok := headerInt(map[string]any{"k": v}, "k"); !ok || n != 5 {
			t.Errorf("%T: %d %v", v, n, ok)
		}
	}
	if _, ok := headerInt(map[string]any{"k": "x"}, "k"); ok {
		t.Error("parsed a non-number")
	}
	if _, ok := headerInt(nil, "k"); ok {
		t.Error("parsed a missing header")
	}
}

func TestNewRequestID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := newRequestID()
		if len(id) != 36 || id[14] != '4' || !strings.ContainsRune("89ab", rune(id[19])) || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		seen[id] = true
	}
}

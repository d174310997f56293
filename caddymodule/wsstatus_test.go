package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/scrapegate/scrapegate/rpc"
)

// fakeBus stands in for App.Subscribe.
type fakeBus struct {
	mu   sync.Mutex
	fns  map[int]func(rpc.Event)
	next int
}

func (b *fakeBus) subscribe(fn func(rpc.Event)) func() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fns == nil {
		b.fns = map[int]func(rpc.Event){}
	}
	id := b.next
	b.next++
	b.fns[id] = fn
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(b.fns, id)
	}
}

func (b *fakeBus) emit(e rpc.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, fn := range b.fns {
		fn(e)
	}
}

func (b *fakeBus) subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.fns)
}

// wsEnv is a ws_status handler behind an httptest server.
type wsEnv struct {
	h    *WSStatus
	bus  *fakeBus
	link *fakeLink
	srv  *httptest.Server
	url  string
}

func newWSEnv(t *testing.T, cfg *WSStatus) *wsEnv {
	t.Helper()
	e := &wsEnv{h: cfg, bus: new(fakeBus), link: newFakeLink()}
	if err := e.h.Validate(); err != nil {
		t.Fatal(err)
	}
	e.h.setup(newStatusSource(e.link, nil, time.Now(), time.Second, nil), e.bus.subscribe)
	e.srv = httptest.NewServer(serveHandler(e.h, "", ""))
	e.url = "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/ws"
	t.Cleanup(func() {
		if err := e.h.Cleanup(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		e.srv.Close()
	})
	return e
}

// dial opens a socket as user (with role) and returns it.
func (e *wsEnv) dial(t *testing.T, user, role string, protocols ...string) *websocket.Conn {
	t.Helper()
	c, resp, err := e.try(user, role, nil, protocols...)
	if err != nil {
		t.Fatalf("dialing as %s: %v (%v)", user, err, resp)
	}
	c.SetReadLimit(1 << 24)
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func (e *wsEnv) try(user, role string, hdr http.Header, protocols ...string) (*websocket.Conn, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if hdr == nil {
		hdr = http.Header{}
	}
	if user != "" {
		hdr.Set("X-Test-User", user)
	}
	if role != "" {
		hdr.Set("X-Test-Role", role)
	}
	return websocket.Dial(ctx, e.url, &websocket.DialOptions{HTTPHeader: hdr, Subprotocols: protocols})
}

// read reads one message, failing the test after 5 s.
func read(t *testing.T, c *websocket.Conn) WebSocketMessage {
	t.Helper()
	m, err := readErr(c, 5*time.Second)
	if err != nil {
		t.Fatalf("reading: %v", err)
	}
	return m
}

func readErr(c *websocket.Conn, within time.Duration) (WebSocketMessage, error) {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	typ, b, err := c.Read(ctx)
	if err != nil {
		return WebSocketMessage{}, err
	}
	var m WebSocketMessage
	if typ != websocket.MessageText {
		return m, fmt.Errorf("got a %v message", typ)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("bad message %s: %v", b, err)
	}
	return m, nil
}

// readUntil reads until a message of type typ, failing after 5 s.
func readUntil(t *testing.T, c *websocket.Conn, typ string) WebSocketMessage {
	t.Helper()
	for {
		if m := read(t, c); m.Type == typ {
			return m
		}
	}
}

func send(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("writing %s: %v", msg, err)
	}
}

// handshake reads the first two messages of a socket: the snapshot and the subscription.
func handshake(t *testing.T, c *websocket.Conn) (StatusResponse, subscribedData) {
	t.Helper()
	m := read(t, c)
	if m.Type != "status" || m.RequestID != nil {
		t.Fatalf("first message = %+v, want a status snapshot", m)
	}
	var st StatusResponse
	if err := json.Unmarshal(m.Data, &st); err != nil {
		t.Fatalf("snapshot data: %v", err)
	}
	m = read(t, c)
	if m.Type != "subscribed" {
		t.Fatalf("second message = %+v, want subscribed", m)
	}
	var sd subscribedData
	if err := json.Unmarshal(m.Data, &sd); err != nil {
		t.Fatalf("subscribed data: %v", err)
	}
	return st, sd
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWSStatusOwnEventsOnly(t *testing.T) {
	e := newWSEnv(t, &WSStatus{})
	a := e.dial(t, "A", "")
	b := e.dial(t, "B", "user")
	admin := e.dial(t, "ops", "user,admin")

	st, sd := handshake(t, a)
	if st.Series == nil || len(st.Series.Calls) != seriesSeconds || st.Broker.ConnectionName == "" {
		t.Errorf("snapshot on connect lacks the full series or broker: %+v", st.Broker)
	}
	if sd.ClientID != "A" || sd.Scope != "all" || sd.Admin {
		t.Errorf("A subscribed = %+v", sd)
	}
	handshake(t, b)
	if _, sd := handshake(t, admin); !sd.Admin {
		t.Errorf("admin subscribed = %+v", sd)
	}
	waitFor(t, "3 subscribers", func() bool { return e.h.hub.len() == 3 })

	for _, typ := range []string{rpc.EventAccepted, rpc.EventStarted, rpc.EventCompleted} {
		e.bus.emit(ev(typ, "A", "rA"))
	}
	e.bus.emit(ev(rpc.EventFailed, "B", "rB"))

	for _, want := range []string{rpc.EventAccepted, rpc.EventStarted, rpc.EventCompleted} {
		m := read(t, a)
		if m.Type != want || m.RequestID == nil || *m.RequestID != "rA" {
			t.Fatalf("A got %+v, want %s of rA", m, want)
		}
	}
	if m := read(t, b); m.Type != rpc.EventFailed || *m.RequestID != "rB" {
		t.Fatalf("B got %+v, want only its own failed rB", m)
	}
	for i := range 4 {
		if m := read(t, admin); !strings.HasPrefix(m.Type, "task.") {
			t.Fatalf("admin message %d = %+v", i, m)
		}
	}
	// A sees nothing of B's
	e.bus.emit(ev(rpc.EventStarted, "A", "rA2"))
	if m := read(t, a); *m.RequestID != "rA2" {
		t.Errorf("A's next message is %+v, want rA2", m)
	}
}

func TestWSStatusActions(t *testing.T) {
	e := newWSEnv(t, &WSStatus{MaxSubscriptions: 2})
	c := e.dial(t, "A", "")
	handshake(t, c)

	send(t, c, `{"action":"subscribe","request_id":"r5"}`)
	m := read(t, c)
	var sd subscribedData
	_ = json.Unmarshal(m.Data, &sd)
	if m.Type != "subscribed" || m.RequestID == nil || *m.RequestID != "r5" || sd.Scope != "request_ids" || len(sd.RequestIDs) != 1 {
		t.Fatalf("subscribe r5: %+v %+v", m, sd)
	}
	e.bus.emit(ev(rpc.EventStarted, "A", "r4"))
	e.bus.emit(ev(rpc.EventStarted, "A", "r5"))
	if m := read(t, c); m.Type != rpc.EventStarted || *m.RequestID != "r5" {
		t.Fatalf("following r5 got %+v", m)
	}

	for _, tc := range []struct{ in, typ, code string }{
		{`{"action":"ping"}`, "pong", ""},
		{`{"action":"status"}`, "status", ""},
		{`{"action":"subscribe","request_id":"r6"}`, "subscribed", ""},
		{`{"action":"subscribe","request_id":"r7"}`, "error", CodeValidationError}, // over max_subscriptions
		{`{"action":"subscribe","request_id":"` + strings.Repeat("x", 200) + `"}`, "error", CodeValidationError},
		{`{"action":"subscribe","request_id":"a\nb"}`, "error", CodeValidationError},
		{`{"action":"dance"}`, "error", CodeValidationError},
		{`{"action":"ping","extra":1}`, "error", CodeMalformedJSON},
		{`not json`, "error", CodeMalformedJSON},
		{`{"action":"ping"} {"action":"ping"}`, "error", CodeMalformedJSON},
		{`{"action":"unsubscribe","request_id":"r5"}`, "subscribed", ""},
		{`{"action":"unsubscribe"}`, "subscribed", ""},
		{`{"action":"subscribe","request_id":"*"}`, "subscribed", ""},
	} {
		send(t, c, tc.in)
		m := read(t, c)
		if m.Type != tc.typ {
			t.Fatalf("%s: got %+v, want %s", tc.in, m, tc.typ)
		}
		if tc.code != "" {
			var ed wsErrorData
			_ = json.Unmarshal(m.Data, &ed)
			if ed.Code != tc.code || ed.Error == "" || ed.Detail == "" {
				t.Errorf("%s: error data %+v, want code %s", tc.in, ed, tc.code)
			}
		}
	}
	// after subscribing to all again, every own task comes through
	e.bus.emit(ev(rpc.EventStarted, "A", "r9"))
	if m := read(t, c); *m.RequestID != "r9" {
		t.Errorf("after subscribe *: %+v", m)
	}

	// binary messages are refused, politely
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageBinary, []byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	if m := read(t, c); m.Type != "error" || !strings.Contains(string(m.Data), CodeBadRequest) {
		t.Errorf("binary: %+v", m)
	}

	// English on request
	c2, _, err := e.try("A", "", http.Header{"Accept-Language": {"en-US"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.CloseNow()
	handshake(t, c2)
	send(t, c2, `nope`)
	if m := read(t, c2); !strings.Contains(string(m.Data), "not valid JSON") {
		t.Errorf("English error = %s", m.Data)
	}

	// a message over read_limit closes the socket (1009)
	send(t, c, `{"action":"ping","request_id":"`+strings.Repeat("y", DefaultWSReadLimit)+`"}`)
	for {
		if _, err := readErr(c, 5*time.Second); err != nil {
			if websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
				t.Errorf("oversized message: %v, want close 1009", err)
			}
			break
		}
	}
}

func TestWSStatusRefusals(t *testing.T) {
	e := newWSEnv(t, &WSStatus{Origins: []string{"https://dash.example.com", "*.example.org"}})
	base := strings.Replace(e.url, "ws://", "http://", 1)

	for _, tc := range []struct {
		name   string
		method string
		hdr    http.Header
		status int
		code   string
	}{
		{"no upgrade", http.MethodGet, http.Header{"X-Test-User": {"A"}}, http.StatusUpgradeRequired, CodeUpgradeRequired},
		{"post", http.MethodPost, http.Header{"X-Test-User": {"A"}}, http.StatusMethodNotAllowed, CodeMethodNotAllowed},
		{"no key", http.MethodGet, http.Header{"X-Test-User": {"A"}, "Connection": {"Upgrade"}, "Upgrade": {"websocket"}}, http.StatusBadRequest, CodeBadRequest},
		{"anonymous", http.MethodGet, wsHeaders(nil), http.StatusUnauthorized, CodeUnauthorized},
		{"foreign origin", http.MethodGet, wsHeaders(http.Header{"X-Test-User": {"A"}, "Origin": {"https://evil.example"}}), http.StatusForbidden, CodeForbidden},
		{"wrong scheme", http.MethodGet, wsHeaders(http.Header{"X-Test-User": {"A"}, "Origin": {"http://dash.example.com"}}), http.StatusForbidden, CodeForbidden},
		{"subprotocol missing", http.MethodGet, wsHeaders(http.Header{"X-Test-User": {"A"}, "Sec-Websocket-Protocol": {"bearer.x"}}), http.StatusBadRequest, CodeBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, base, nil)
			for k, v := range tc.hdr {
				req.Header[k] = v
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status || resp.Header.Get("X-Code") != tc.code {
				t.Errorf("got %d %q, want %d %s", resp.StatusCode, resp.Header.Get("X-Code"), tc.status, tc.code)
			}
		})
	}

	// allowed origins, and the token subprotocol: the server echoes only scrapegate.v1
	for _, origin := range []string{"https://dash.example.com", "http://x.example.org", ""} {
		hdr := http.Header{}
		if origin != "" {
			hdr.Set("Origin", origin)
		}
		c, _, err := e.try("A", "", hdr, WSSubprotocol, "bearer.eyJhbGciOi.payload.sig")
		if err != nil {
			t.Fatalf("origin %q: %v", origin, err)
		}
		if c.Subprotocol() != WSSubprotocol {
			t.Errorf("negotiated %q, want %s", c.Subprotocol(), WSSubprotocol)
		}
		handshake(t, c)
		c.CloseNow()
	}
}

// wsHeaders returns h plus the headers of a valid upgrade.
func wsHeaders(h http.Header) http.Header {
	if h == nil {
		h = http.Header{}
	}
	h.Set("Connection", "Upgrade")
	h.Set("Upgrade", "websocket")
	h.Set("Sec-WebSocket-Version", "13")
	h.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	return h
}

func TestWSStatusSlowReaderDropped(t *testing.T) {
	e := newWSEnv(t, &WSStatus{Buffer: 4, WriteTimeout: caddy.Duration(time.Minute)})
	before := wsEvictions.Load()
	slow := e.dial(t, "A", "")
	fast := e.dial(t, "A", "")
	handshake(t, fast) // the slow one never reads
	waitFor(t, "2 subscribers", func() bool { return e.h.hub.len() == 2 })

	got := make(chan string, 1)
	go func() {
		defer close(got)
		for {
			m, err := readErr(fast, 10*time.Second)
			if err != nil {
				return
			}
			if m.Type == rpc.EventProgress {
				got <- *m.RequestID
			}
		}
	}()
	big := json.RawMessage(`{"blob":"` + strings.Repeat("x", 64<<10) + `"}`)
	const n = 400 // 25 MiB: more than the sockets' buffers hold
	for i := range n {
		evt := ev(rpc.EventProgress, "A", fmt.Sprint(i))
		evt.Data = big
		e.bus.emit(evt)
		select {
		case id := <-got:
			if id != fmt.Sprint(i) {
				t.Fatalf("fast reader got %s, want %d", id, i)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("fast reader stalled at event %d", i)
		}
	}
	waitFor(t, "the slow reader's eviction", func() bool { return e.h.hub.len() == 1 })
	if wsEvictions.Load() != before+1 {
		t.Errorf("evictions %d, want %d", wsEvictions.Load(), before+1)
	}
	// the slow client finds its socket closed after what was in flight
	var read int
	for {
		if _, err := readErr(slow, 10*time.Second); err != nil {
			break
		}
		read++
	}
	if read >= n {
		t.Errorf("slow reader got all %d messages; it should have been dropped", read)
	}
}

func TestWSStatusPing(t *testing.T) {
	// A pong must come within WriteTimeout: generous, so that a loaded
	// machine running -race does not make the answering client look mute.
	e := newWSEnv(t, &WSStatus{PingInterval: caddy.Duration(50 * time.Millisecond), WriteTimeout: caddy.Duration(time.Second)})
	alive := e.dial(t, "A", "")
	mute := e.dial(t, "B", "")
	go func() { // a client that reads answers pings
		for {
			if _, _, err := alive.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	// a client gets its "subscribed" message just before the hub holds it:
	// both must be in before the count can tell a removal (the mute one
	// goes only after WriteTimeout, 1 s)
	waitFor(t, "both clients in the hub", func() bool { return e.h.hub.len() == 2 })
	waitFor(t, "the mute client's removal", func() bool { return e.h.hub.len() == 1 })
	time.Sleep(500 * time.Millisecond) // ten more ping intervals
	if n := e.h.hub.len(); n != 1 {
		t.Errorf("the hub holds %d clients, want only the one answering pings", n)
	}
	_ = mute
}

func TestWSStatusCleanupClosesSockets(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var clients []*websocket.Conn
	h := &WSStatus{}
	bus := new(fakeBus)
	h.setup(newStatusSource(newFakeLink(), nil, time.Now(), time.Second, nil), bus.subscribe)
	srv := httptest.NewServer(serveHandler(h, "A", ""))
	defer srv.Close()
	e := &wsEnv{h: h, url: "ws" + strings.TrimPrefix(srv.URL, "http")}
	for range 3 {
		c, _, err := e.try("", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		handshake(t, c)
		clients = append(clients, c)
	}
	waitFor(t, "3 subscribers", func() bool { return h.hub.len() == 3 })

	start := time.Now()
	if err := h.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("cleanup took %v", d)
	}
	for i, c := range clients {
		_, err := readErr(c, 5*time.Second)
		if got := websocket.CloseStatus(err); got != websocket.StatusServiceRestart {
			t.Errorf("client %d: %v, want close 1012", i, err)
		}
		c.CloseNow()
	}
	if bus.subscribers() != 0 {
		t.Error("still subscribed to the app's events")
	}
	if wsClients.Load() != 0 {
		t.Errorf("websocket_clients = %d after cleanup", wsClients.Load())
	}
	// a socket arriving at an unloaded handler is sent to the next config
	c, _, err := e.try("", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readErr(c, 5*time.Second); websocket.CloseStatus(err) != websocket.StatusServiceRestart {
		t.Errorf("late socket: %v, want 1012", err)
	}
	c.CloseNow()
	srv.CloseClientConnections()
}

func TestWSStatusCloseDelay(t *testing.T) {
	e := newWSEnv(t, &WSStatus{CloseDelay: caddy.Duration(300 * time.Millisecond)})
	c := e.dial(t, "A", "")
	handshake(t, c)
	start := time.Now()
	if err := e.h.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 100*time.Millisecond {
		t.Error("cleanup with a close delay blocked")
	}
	e.bus.emit(ev(rpc.EventStarted, "A", "late"))
	if m := read(t, c); m.Type != rpc.EventStarted {
		t.Errorf("during the delay: %+v", m)
	}
	_, err := readErr(c, 5*time.Second)
	if websocket.CloseStatus(err) != websocket.StatusServiceRestart {
		t.Errorf("after the delay: %v, want 1012", err)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("closed after %v, before the delay", d)
	}
}

func TestWSStatusPeriodicSnapshots(t *testing.T) {
	e := newWSEnv(t, &WSStatus{StatusInterval: caddy.Duration(50 * time.Millisecond)})
	c := e.dial(t, "A", "")
	handshake(t, c)
	for range 2 {
		m := readUntil(t, c, "status")
		var st StatusResponse
		if err := json.Unmarshal(m.Data, &st); err != nil {
			t.Fatal(err)
		}
		if st.Series == nil || len(st.Series.Calls) != 2 {
			t.Errorf("periodic snapshot series = %+v, want the last 2 seconds", st.Series)
		}
	}

	off := newWSEnv(t, &WSStatus{StatusInterval: -1})
	c = off.dial(t, "A", "")
	handshake(t, c)
	if m, err := readErr(c, 300*time.Millisecond); err == nil {
		t.Errorf("status_interval off still sent %+v", m)
	}
}

func TestWebSocketToken(t *testing.T) {
	for _, tc := range []struct {
		name, url string
		hdr       http.Header
		want      string
	}{
		{"not an upgrade", "/ws?token=q", http.Header{"Sec-Websocket-Protocol": {"scrapegate.v1, bearer.p"}}, ""},
		{"protocol", "/ws", wsHeaders(http.Header{"Sec-Websocket-Protocol": {"scrapegate.v1, bearer.a.b.c"}}), "a.b.c"},
		{"protocol, case", "/ws", wsHeaders(http.Header{"Sec-Websocket-Protocol": {"Bearer.tok", "scrapegate.v1"}}), "tok"},
		{"query", "/ws?token=q.r.s", wsHeaders(nil), "q.r.s"},
		{"protocol first", "/ws?token=q", wsHeaders(http.Header{"Sec-Websocket-Protocol": {"scrapegate.v1,bearer.p"}}), "p"},
		{"empty bearer", "/ws", wsHeaders(http.Header{"Sec-Websocket-Protocol": {"bearer."}}), ""},
		{"none", "/ws", wsHeaders(nil), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, tc.url, nil)
			for k, v := range tc.hdr {
				r.Header[k] = v
			}
			if got := WebSocketToken(r); got != tc.want {
				t.Errorf("WebSocketToken = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestWSStatusCaddyfile(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		check    func(*WSStatus) bool
		err      string
	}{
		{name: "bare", in: `ws_status`, check: func(h *WSStatus) bool { return h.StatusInterval == 0 }},
		{name: "all", in: `ws_status {
			status_interval 2s
			buffer 8
			write_timeout 3s
			ping_interval 15s
			admin_role ops
			origins https://a.example *.b.example
			close_delay 1s
			max_subscriptions 5
			read_limit 1024
		}`, check: func(h *WSStatus) bool {
			return h.StatusInterval == caddy.Duration(2*time.Second) && h.Buffer == 8 && h.WriteTimeout == caddy.Duration(3*time.Second) &&
				h.PingInterval == caddy.Duration(15*time.Second) && h.AdminRole == "ops" && len(h.Origins) == 2 &&
				h.CloseDelay == caddy.Duration(time.Second) && h.MaxSubscriptions == 5 && h.ReadLimit == 1024
		}},
		{name: "off", in: "ws_status {\n status_interval off\n}", check: func(h *WSStatus) bool { return h.StatusInterval < 0 }},
		{name: "argument", in: `ws_status now`, err: "wrong argument count"},
		{name: "unknown", in: "ws_status {\n speed 3\n}", err: "unrecognized subdirective: speed"},
		{name: "duplicate", in: "ws_status {\n buffer 1\n buffer 2\n}", err: "duplicate subdirective: buffer"},
		{name: "bad buffer", in: "ws_status {\n buffer lots\n}", err: `buffer: "lots" is not a positive integer`},
		{name: "zero buffer", in: "ws_status {\n buffer 0\n}", err: "not a positive integer"},
		{name: "bad interval", in: "ws_status {\n status_interval soon\n}", err: `bad duration "soon"`},
		{name: "zero interval", in: "ws_status {\n status_interval 0s\n}", err: "must be positive or off"},
		{name: "zero ping", in: "ws_status {\n ping_interval 0\n}", err: "must be positive"},
		{name: "no origins", in: "ws_status {\n origins\n}", err: "wrong argument count"},
		{name: "two roles", in: "ws_status {\n admin_role a b\n}", err: "wrong argument count"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h WSStatus
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(&h) {
				t.Errorf("parsed %+v", h.CaddyModule())
			}
		})
	}
	bad := WSStatus{Origins: []string{"[bad"}}
	if err := bad.Validate(); err == nil {
		t.Error("a bad origin pattern passed Validate")
	}
	if err := (&WSStatus{Buffer: -1}).Validate(); err == nil {
		t.Error("a negative buffer passed Validate")
	}
}

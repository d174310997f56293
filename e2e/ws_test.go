package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	amqp "github.com/rabbitmq/amqp091-go"
)

// The live-status tests: ws_status through a real gateway process
// (testdata/status.Caddyfile), a real worker and the real RabbitMQ.

// statusCaddyfile is the config of the live-status tests.
const statusCaddyfile = "testdata/status.Caddyfile"

// wsMsg is one message of the status WebSocket (caddymodule.WebSocketMessage).
type wsMsg struct {
	Type      string          `json:"type"`
	RequestID *string         `json:"request_id"`
	Data      json.RawMessage `json:"data"`
	Timestamp time.Time       `json:"timestamp"`
	received  time.Time
}

// rid returns the message's request id, or "".
func (m wsMsg) rid() string {
	if m.RequestID == nil {
		return ""
	}
	return *m.RequestID
}

// wsEvent is the data of a task event message.
type wsEvent struct {
	Type      string          `json:"type"`
	RequestID string          `json:"request_id"`
	ClientID  string          `json:"client_id"`
	Data      json.RawMessage `json:"data"`
	Timestamp time.Time       `json:"timestamp"`
}

// wsAuth is how a test client presents its token.
type wsAuth int

const (
	wsAuthHeader   wsAuth = iota // Authorization: Bearer
	wsAuthProtocol               // Sec-WebSocket-Protocol: scrapegate.v1, bearer.<token>
	wsAuthQuery                  // ?token=
	wsAuthNone
)

// wsClient is a test's WebSocket to /ws, read in the background.
type wsClient struct {
	c    *websocket.Conn
	msgs chan wsMsg
	done chan struct{} // closed when reading ended
	err  error         // why (valid after done)
}

// wsDial opens /ws of g with token presented as auth says. It returns the
// handshake's HTTP response on failure.
func wsDial(ctx context.Context, g *Gateway, token string, auth wsAuth) (*websocket.Conn, *http.Response, error) {
	u := "ws" + strings.TrimPrefix(g.URL, "http") + "/ws"
	opts := &websocket.DialOptions{HTTPHeader: http.Header{}, Subprotocols: []string{"scrapegate.v1"}}
	switch auth {
	case wsAuthHeader:
		opts.HTTPHeader.Set("Authorization", "Bearer "+token)
	case wsAuthProtocol:
		opts.Subprotocols = append(opts.Subprotocols, "bearer."+token)
	case wsAuthQuery:
		u += "?token=" + url.QueryEscape(token)
	}
	c, resp, err := websocket.Dial(ctx, u, opts)
	if err == nil {
		c.SetReadLimit(16 << 20)
	}
	return c, resp, err
}

// wsOpen opens a socket and starts reading it into a channel of buffer messages.
func wsOpen(t testing.TB, g *Gateway, token string, auth wsAuth, buffer int) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, resp, err := wsDial(ctx, g, token, auth)
	for retries := 0; err != nil && resp == nil && retries < 20 && ctx.Err() == nil; retries++ {
		// a connection reset while the gateway swaps configs (a reload):
		// the client reconnects, as browsers do
		time.Sleep(100 * time.Millisecond)
		c, resp, err = wsDial(ctx, g, token, auth)
	}
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("opening /ws: %v (HTTP %d)", err, status)
	}
	return wsRead(t, c, buffer)
}

// wsRead starts reading c in the background.
func wsRead(t testing.TB, c *websocket.Conn, buffer int) *wsClient {
	w := &wsClient{c: c, msgs: make(chan wsMsg, buffer), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			_, b, err := c.Read(context.Background())
			if err != nil {
				w.err = err
				return
			}
			m := wsMsg{received: time.Now()}
			if err := json.Unmarshal(b, &m); err != nil {
				w.err = fmt.Errorf("bad message %q: %v", b, err)
				return
			}
			select {
			case w.msgs <- m:
			default:
				w.err = errors.New("test client buffer full")
				return
			}
		}
	}()
	t.Cleanup(func() { c.CloseNow() })
	return w
}

// next returns the next message, or false after within.
func (w *wsClient) next(within time.Duration) (wsMsg, bool) {
	timer := time.NewTimer(within)
	defer timer.Stop()
	select {
	case m := <-w.msgs:
		return m, true
	case <-timer.C:
		return wsMsg{}, false
	}
}

// await returns the first message that satisfies match, failing the test
// after within; messages before it are dropped.
func (w *wsClient) await(t testing.TB, within time.Duration, what string, match func(wsMsg) bool) wsMsg {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		m, ok := w.next(time.Until(deadline))
		if !ok {
			select {
			case <-w.done:
				t.Fatalf("socket closed waiting for %s: %v", what, w.err)
			default:
			}
			t.Fatalf("no %s within %v", what, within)
		}
		if match(m) {
			return m
		}
	}
}

// handshake checks the first two messages: a snapshot, then the subscription.
func (w *wsClient) handshake(t testing.TB, clientID string) {
	t.Helper()
	m, ok := w.next(30 * time.Second)
	if !ok || m.Type != "status" {
		t.Fatalf("first message %+v (%v), want a status snapshot", m, w.err)
	}
	m, ok = w.next(30 * time.Second)
	if !ok || m.Type != "subscribed" {
		t.Fatalf("second message %+v, want subscribed", m)
	}
	var sd struct {
		ClientID string `json:"client_id"`
		Scope    string `json:"scope"`
	}
	if err := json.Unmarshal(m.Data, &sd); err != nil || sd.ClientID != clientID || sd.Scope != "all" {
		t.Fatalf("subscribed %s, want client %s, scope all", m.Data, clientID)
	}
}

// send writes a client message.
func (w *wsClient) send(t testing.TB, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("sending %s: %v", msg, err)
	}
}

// startStatusGateway starts a vhost, a worker and the status gateway (env
// adds to the defaults) and waits until it is healthy and knows the worker.
func startStatusGateway(t testing.TB, env map[string]string, workerArgs ...string) (*Gateway, *Worker, string) {
	t.Helper()
	amqpURL := NewVHost(t)
	w := StartWorker(t, amqpURL, workerArgs...)
	all := map[string]string{"AMQP_URL": amqpURL}
	for k, v := range env {
		all[k] = v
	}
	g := StartGateway(t, statusCaddyfile, all)
	g.WaitHealthy(t, 30*time.Second)
	return g, w, amqpURL
}

// scrape makes an echo call as token and returns its request id.
func scrape(t testing.TB, g *Gateway, token string, params map[string]any) string {
	t.Helper()
	resp, body := PostJSON(t, g.URL+"/scrape", map[string]any{"script_name": "echo", "parameters": params, "timeout": 30}, Bearer(token))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /scrape: %s: %s", resp.Status, body)
	}
	var r struct {
		RequestID string `json:"request_id"`
		Status    string `json:"status"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.Status != "completed" {
		t.Fatalf("POST /scrape: %s (%v)", body, err)
	}
	return r.RequestID
}

// waitScrapeReady retries an echo call until the gateway has heard the
// worker's heartbeat and the call completes.
func waitScrapeReady(t testing.TB, g *Gateway, token string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, body := PostJSON(t, g.URL+"/scrape", map[string]any{"script_name": "echo", "timeout": 10}, Bearer(token))
		if resp.StatusCode == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("echo never succeeded: %s: %s", resp.Status, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// eventPublisher publishes task events on scrape.events of a vhost, as a
// worker would.
type eventPublisher struct {
	conn *amqp.Connection
	ch   *amqp.Channel
}

func newEventPublisher(t testing.TB, amqpURL string) *eventPublisher {
	t.Helper()
	conn, err := amqp.DialConfig(amqpURL, amqp.Config{Properties: amqp.Table{"connection_name": "e2e-event-publisher"}})
	if err != nil {
		t.Fatalf("dialing the broker: %v", err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("opening a channel: %v", err)
	}
	if err := ch.ExchangeDeclare("scrape.events", "topic", true, false, false, false, nil); err != nil {
		t.Fatalf("declaring scrape.events: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return &eventPublisher{conn: conn, ch: ch}
}

// publish sends one event (its routing key is its type).
func (p *eventPublisher) publish(t testing.TB, ev wsEvent) {
	t.Helper()
	if ev.Timestamp.IsZero() {
		ev.Timestamp = time.Now().UTC()
	}
	body, _ := json.Marshal(ev)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.ch.PublishWithContext(ctx, "scrape.events", ev.Type, false, false, amqp.Publishing{ContentType: "application/json", Body: body}); err != nil {
		t.Fatalf("publishing event: %v", err)
	}
}

func TestWSOwnTaskEventsInOrder(t *testing.T) {
	g, _, _ := startStatusGateway(t, nil)
	tokA := MintToken(t, GatewaySecret, "client-a", time.Hour, nil)
	tokB := MintToken(t, GatewaySecret, "client-b", time.Hour, nil)
	// warm up as another client: the events of a call can reach the gateway
	// after its reply, and A must see only the task below
	waitScrapeReady(t, g, MintToken(t, GatewaySecret, "warmup", time.Hour, nil))

	a := wsOpen(t, g, tokA, wsAuthHeader, 256)
	b := wsOpen(t, g, tokB, wsAuthHeader, 256)
	a.handshake(t, "client-a")
	b.handshake(t, "client-b")

	rid := scrape(t, g, tokA, map[string]any{"sleep_ms": 100})

	// A: every event of its task, the worker's in the order they happened
	var types []string
	for {
		m := a.await(t, 10*time.Second, "A's task events", func(m wsMsg) bool { return strings.HasPrefix(m.Type, "task.") })
		if m.rid() != rid {
			t.Fatalf("A got an event of %s, want only %s", m.rid(), rid)
		}
		var e wsEvent
		if err := json.Unmarshal(m.Data, &e); err != nil || e.Type != m.Type || e.RequestID != rid || e.ClientID != "client-a" {
			t.Fatalf("event data %s (%v)", m.Data, err)
		}
		types = append(types, m.Type)
		if m.Type == "task.completed" {
			break
		}
	}
	if got := strings.Join(types, " "); got != "task.accepted task.started task.completed" && got != "task.started task.accepted task.completed" {
		t.Errorf("A's events: %s, want accepted, started (in either order: two publishers) then completed", got)
	}

	// B: nothing of A's task, though its socket works (its own call shows up)
	ridB := scrape(t, g, tokB, nil)
	for {
		m := b.await(t, 10*time.Second, "B's own events", func(m wsMsg) bool { return strings.HasPrefix(m.Type, "task.") })
		if m.rid() == rid {
			t.Fatalf("B saw %s of A's task %s", m.Type, rid)
		}
		if m.rid() == ridB && m.Type == "task.completed" {
			break
		}
	}

	// an admin sees both; a subscription to one request id narrows it
	admin := wsOpen(t, g, MintToken(t, GatewaySecret, "ops", time.Hour, map[string]any{"role": "admin"}), wsAuthHeader, 256)
	admin.handshake(t, "ops")
	ridA2 := scrape(t, g, tokA, nil)
	admin.await(t, 10*time.Second, "A's task at the admin", func(m wsMsg) bool { return m.rid() == ridA2 && m.Type == "task.completed" })

	a.send(t, `{"action":"subscribe","request_id":"only-this-one"}`)
	a.await(t, 10*time.Second, "the subscription", func(m wsMsg) bool { return m.Type == "subscribed" && m.rid() == "only-this-one" })
	scrape(t, g, tokA, nil)
	a.send(t, `{"action":"ping"}`)
	m := a.await(t, 10*time.Second, "pong", func(m wsMsg) bool { return m.Type == "pong" || strings.HasPrefix(m.Type, "task.") })
	if m.Type != "pong" {
		t.Errorf("following another request id, A still got %s of %s", m.Type, m.rid())
	}
}

func TestWSTokenPaths(t *testing.T) {
	g, _, _ := startStatusGateway(t, nil)
	tok := MintToken(t, GatewaySecret, "browser", time.Hour, nil)
	for _, tc := range []struct {
		name string
		auth wsAuth
	}{{"header", wsAuthHeader}, {"subprotocol", wsAuthProtocol}, {"query", wsAuthQuery}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, resp, err := wsDial(ctx, g, tok, tc.auth)
			if err != nil {
				t.Fatalf("dial: %v (%v)", err, resp)
			}
			if c.Subprotocol() != "scrapegate.v1" {
				t.Errorf("negotiated %q, want scrapegate.v1 (never the token)", c.Subprotocol())
			}
			if p := resp.Header.Get("Sec-WebSocket-Protocol"); strings.Contains(p, "bearer") {
				t.Errorf("the server echoed %q", p)
			}
			wsRead(t, c, 16).handshake(t, "browser")
		})
	}

	wrong := MintToken(t, "not-the-secret-0123456789abcdef0123456789", "browser", time.Hour, nil)
	for _, tc := range []struct {
		name  string
		token string
		auth  wsAuth
	}{
		{"no token", "", wsAuthNone},
		{"bad subprotocol token", wrong, wsAuthProtocol},
		{"bad query token", wrong, wsAuthQuery},
		{"expired", MintToken(t, GatewaySecret, "browser", -time.Minute, nil), wsAuthProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, resp, err := wsDial(ctx, g, tc.token, tc.auth)
			if err == nil {
				c.CloseNow()
				t.Fatal("the socket opened")
			}
			if resp == nil || resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("dial: %v, want HTTP 401", err)
			}
		})
	}

	// the token never reaches the access log
	time.Sleep(200 * time.Millisecond)
	logs := g.Logs()
	if !strings.Contains(logs, `"uri":"/ws`) {
		t.Errorf("no access log of /ws: the check below would prove nothing")
	}
	if strings.Contains(logs, tok) || strings.Contains(logs, wrong) {
		t.Errorf("a token is in the gateway's logs")
	}
}

func TestWSThousandSockets(t *testing.T) {
	const clients, perClient = 100, 10 // 1,000 sockets
	g, _, _ := startStatusGateway(t, map[string]string{"WS_STATUS_INTERVAL": "1s"})
	tokens := make([]string, clients)
	for i := range tokens {
		tokens[i] = MintToken(t, GatewaySecret, fmt.Sprintf("c%03d", i), time.Hour, nil)
	}
	waitScrapeReady(t, g, tokens[0])

	socks := make([]*wsClient, clients*perClient)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	sem := make(chan struct{}, 64)
	for i := range socks {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			c, _, err := wsDial(ctx, g, tokens[i%clients], wsAuth(i%3)) // all three token paths
			if err != nil {
				mu.Lock()
				failures = append(failures, err.Error())
				mu.Unlock()
				return
			}
			socks[i] = wsRead(t, c, 64)
		}()
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d sockets failed to open; first: %s", len(failures), len(socks), failures[0])
	}
	for i, s := range socks {
		s.handshake(t, fmt.Sprintf("c%03d", i%clients))
	}
	if n := statusOf(t, g, tokens[0]).WebSocketClients; n != len(socks) {
		t.Errorf("/status websocket_clients = %d, want %d", n, len(socks))
	}

	// every socket gets the periodic snapshot...
	for i, s := range socks {
		s.await(t, 10*time.Second, fmt.Sprintf("a periodic snapshot at socket %d", i), func(m wsMsg) bool { return m.Type == "status" })
	}
	// ...and the sockets of client 7, and only they, its task's events
	rid := scrape(t, g, tokens[7], nil)
	for i := 7; i < len(socks); i += clients {
		socks[i].await(t, 10*time.Second, fmt.Sprintf("the task's completion at socket %d", i), func(m wsMsg) bool {
			return m.Type == "task.completed" && m.rid() == rid
		})
	}
	for i, s := range socks {
		if i%clients == 7 {
			continue
		}
		for len(s.msgs) > 0 {
			if m := <-s.msgs; m.rid() == rid {
				t.Fatalf("socket %d of another client got %s of %s", i, m.Type, rid)
			}
		}
	}
}

func TestWSSlowReaderDropped(t *testing.T) {
	g, _, amqpURL := startStatusGateway(t, map[string]string{"WS_BUFFER": "8"})
	tok := MintToken(t, GatewaySecret, "client-a", time.Hour, nil)
	pub := newEventPublisher(t, amqpURL)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	slow, _, err := wsDial(ctx, g, tok, wsAuthHeader) // never read until the end
	if err != nil {
		t.Fatal(err)
	}
	defer slow.CloseNow()
	fast := make([]*wsClient, 3)
	for i := range fast {
		fast[i] = wsOpen(t, g, tok, wsAuthHeader, 1024)
		fast[i].handshake(t, "client-a")
	}
	evictionsBefore := metricValue(t, g, "scrapegate_websocket_evictions_total")

	blob := strings.Repeat("x", 64<<10)
	const n = 400 // 25 MiB: more than the slow socket's kernel buffers hold
	for i := range n {
		pub.publish(t, wsEvent{Type: "task.progress", RequestID: fmt.Sprint("r", i), ClientID: "client-a",
			Data: json.RawMessage(`{"blob":"` + blob + `"}`)})
		// the fast readers keep up, event after event
		for j, f := range fast {
			m := f.await(t, 10*time.Second, fmt.Sprintf("event %d at fast reader %d", i, j), func(m wsMsg) bool { return m.Type == "task.progress" })
			if m.rid() != fmt.Sprint("r", i) {
				t.Fatalf("fast reader %d got %s, want r%d", j, m.rid(), i)
			}
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for metricValue(t, g, "scrapegate_websocket_evictions_total") < evictionsBefore+1 {
		if time.Now().After(deadline) {
			t.Fatal("the slow reader was not evicted")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// the slow reader finds its socket closed after what was already in flight
	got := 0
	for {
		rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, _, err := slow.Read(rctx)
		rcancel()
		if err != nil {
			break
		}
		got++
	}
	if got >= n {
		t.Errorf("the slow reader got all %d events: it was not dropped", got)
	}
	t.Logf("the slow reader got %d messages before its socket was closed", got)
	for i, f := range fast {
		select {
		case <-f.done:
			t.Errorf("fast reader %d was closed too: %v", i, f.err)
		default:
		}
	}
}

func TestWSCloseOnReloadAndShutdown(t *testing.T) {
	g, _, _ := startStatusGateway(t, nil)
	tok := MintToken(t, GatewaySecret, "client-a", time.Hour, nil)
	waitScrapeReady(t, g, tok)
	s := wsOpen(t, g, tok, wsAuthHeader, 64)
	s.handshake(t, "client-a")

	g.Reload(t, statusCaddyfile)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the socket survived the reload")
	}
	if code := websocket.CloseStatus(s.err); code != websocket.StatusServiceRestart {
		t.Errorf("closed by the reload with %v, want 1012 (service restart)", s.err)
	}

	// the client reconnects to the new config, and events still flow
	s = wsOpen(t, g, tok, wsAuthHeader, 64)
	s.handshake(t, "client-a")
	rid := scrape(t, g, tok, nil)
	s.await(t, 10*time.Second, "an event after the reload", func(m wsMsg) bool { return m.rid() == rid && m.Type == "task.completed" })

	g.Stop(t)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		t.Fatal("the socket survived the shutdown")
	}
	if code := websocket.CloseStatus(s.err); code != websocket.StatusGoingAway {
		t.Errorf("closed by the shutdown with %v, want 1001 (going away)", s.err)
	}
}

// raiseOpenFiles lifts the soft open-file limit to the hard one (Go does it
// at start, but the test may run under a wrapper that lowered it).
func raiseOpenFiles(t testing.TB, need uint64) {
	t.Helper()
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		t.Fatalf("getrlimit: %v", err)
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			t.Fatalf("setrlimit: %v", err)
		}
	}
	if l.Cur < need {
		t.Fatalf("open-file limit %d < %d needed: raise the hard limit (ulimit -Hn)", l.Cur, need)
	}
}

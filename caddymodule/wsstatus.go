package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/scrapegate/scrapegate/rpc"
)

func init() {
	caddy.RegisterModule(new(WSStatus))
}

// Defaults of WSStatus.
const (
	DefaultStatusInterval   = 5 * time.Second
	DefaultWSBuffer         = 64
	DefaultWSWriteTimeout   = 10 * time.Second
	DefaultWSPingInterval   = 30 * time.Second
	DefaultAdminRole        = "admin"
	DefaultMaxSubscriptions = 100
	DefaultWSReadLimit      = 4096
	// wsCloseGrace is how long a closing socket waits for the client to
	// answer its close frame before it drops the connection.
	wsCloseGrace = time.Second
	// wsShutdownWait bounds how long Cleanup waits for sockets to close.
	wsShutdownWait = 2 * wsCloseGrace
	// connectSnapshotTTL is how long the snapshot sent on connect is reused,
	// so that many clients connecting at once cost one snapshot.
	connectSnapshotTTL = time.Second
	// maxRequestIDLen bounds a request id a client subscribes to.
	maxRequestIDLen = 128
)

// WSSubprotocol is the WebSocket subprotocol of the status feed. A client
// that offers subprotocols must offer this one; the server echoes it (never
// the "bearer.<token>" one, see WebSocketToken).
const WSSubprotocol = "scrapegate.v1"

// WSStatus is the `ws_status` handler (`http.handlers.ws_status`): a
// WebSocket feed of the system's status and of the caller's own tasks.
//
// The request must be authenticated by a handler before it (jwt_auth in
// the example Caddyfile): it reads the client from `{http.auth.user.id}`
// and its role from `{http.auth.user.role}`; without a user it refuses the
// request (401). Browsers cannot set an Authorization header on a
// WebSocket, so jwt_auth also takes the token from the Sec-WebSocket-Protocol
// header or the `token` query parameter of an upgrade request (see
// WebSocketToken).
//
// Every message is a WebSocketMessage (`type`, `request_id`, `data`,
// `timestamp`): a "status" snapshot (StatusResponse) on connect and every
// status_interval, a "subscribed" message after each change of what the
// socket follows, the task events of the caller's tasks ("task.accepted",
// "task.started", "task.completed", "task.failed", "task.expired", ...,
// their data the event as published on scrape.events), "pong", and "error".
// A client sees only its own tasks; a user with the admin role sees all.
// A client may send {"action":"subscribe","request_id":"…"} to follow only
// some requests, {"action":"subscribe"} to follow all its tasks again,
// {"action":"unsubscribe"[,"request_id":"…"]}, {"action":"status"} and
// {"action":"ping"}.
//
// Each socket has a bounded queue (buffer messages): a client that reads
// too slowly is disconnected (close code 1008), never allowed to hold up the
// others. The server pings every ping_interval and closes a socket whose
// write or pong takes longer than write_timeout.
//
// Reloads: sockets belong to the handler instance that accepted them.
// When a config is unloaded its handler closes them (1012 "service restart"
// on a reload, after close_delay; 1001 "going away" at shutdown) and the
// clients reconnect to the new config. The hub is therefore not pooled: the
// new config's settings apply to every socket at once, and no goroutine
// outlives its config; the broker link (pooled in the scrapegate app)
// stays up, so no event is lost for the clients that reconnect.
type WSStatus struct {
	// How often a status snapshot is sent to every socket. A negative value
	// (Caddyfile: off) sends only the one on connect and those asked for.
	// Default: 5s.
	StatusInterval caddy.Duration `json:"status_interval,omitempty"`

	// The number of messages queued for one socket; a socket whose queue is
	// full is closed as too slow. Default: 64.
	Buffer int `json:"buffer,omitempty"`

	// How long one write (or one ping's pong) may take before the socket is
	// closed. Default: 10s.
	WriteTimeout caddy.Duration `json:"write_timeout,omitempty"`

	// How often the server pings each socket to keep it alive and detect
	// dead peers. Default: 30s.
	PingInterval caddy.Duration `json:"ping_interval,omitempty"`

	// The role (from `{http.auth.user.role}`, a list separated by commas or
	// spaces) whose users see every client's task events. Default: admin.
	AdminRole string `json:"admin_role,omitempty"`

	// Origins allowed besides the request's own host (browsers send an
	// Origin header; other clients usually none, which is allowed). Each is
	// a host pattern ("example.com", "*.example.com") or, with a scheme, a
	// "scheme://host" pattern, matched case-insensitively with path.Match.
	Origins []string `json:"origins,omitempty"`

	// How long sockets stay open after a config reload before they are
	// closed (1012), so that clients do not all reconnect at the same
	// moment of a reload. Ignored at shutdown. Default: 0.
	CloseDelay caddy.Duration `json:"close_delay,omitempty"`

	// The most request ids one socket may follow. Default: 100.
	MaxSubscriptions int `json:"max_subscriptions,omitempty"`

	// The largest message a client may send, in bytes; a larger one closes
	// the socket (1009). Default: 4096.
	ReadLimit int64 `json:"read_limit,omitempty"`

	hub         *hub
	src         *statusSource
	unsubscribe func()

	mu       sync.Mutex
	closed   bool           // no new socket once set
	conns    sync.WaitGroup // the sockets being served
	closing  chan struct{}  // closed when the sockets must close
	stopOnce sync.Once

	tickOnce sync.Once
	tickDone chan struct{}

	snapMu     sync.Mutex
	snapFull   []byte
	snapFullAt time.Time

	ctx    caddy.Context
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (*WSStatus) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.ws_status",
		New: func() caddy.Module { return new(WSStatus) },
	}
}

// Provision fills in the defaults, loads the scrapegate app and subscribes
// the hub to its task events. It does no network I/O and starts no
// goroutine (the snapshot ticker starts with the first socket).
func (h *WSStatus) Provision(ctx caddy.Context) error {
	h.ctx = ctx
	h.logger = ctx.Logger()
	app, err := loadApp(ctx)
	if err != nil {
		return err
	}
	src, err := provisionStatusSource(ctx, DefaultQueueCache, nil)
	if err != nil {
		return err
	}
	h.setup(src, app.Subscribe)
	return nil
}

// setup fills in the defaults and wires the handler to a status source and
// an event subscription (the app's, or fakes in unit tests).
func (h *WSStatus) setup(src *statusSource, subscribe func(func(rpc.Event)) func()) {
	if h.logger == nil {
		h.logger = zap.NewNop()
	}
	if h.StatusInterval == 0 {
		h.StatusInterval = caddy.Duration(DefaultStatusInterval)
	}
	if h.Buffer == 0 {
		h.Buffer = DefaultWSBuffer
	}
	if h.WriteTimeout == 0 {
		h.WriteTimeout = caddy.Duration(DefaultWSWriteTimeout)
	}
	if h.PingInterval == 0 {
		h.PingInterval = caddy.Duration(DefaultWSPingInterval)
	}
	if h.AdminRole == "" {
		h.AdminRole = DefaultAdminRole
	}
	if h.MaxSubscriptions == 0 {
		h.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if h.ReadLimit == 0 {
		h.ReadLimit = DefaultWSReadLimit
	}
	h.closing = make(chan struct{})
	h.tickDone = make(chan struct{})
	h.src = src
	h.hub = newHub()
	h.unsubscribe = subscribe(h.hub.publish)
}

// Validate checks the configuration.
func (h *WSStatus) Validate() error {
	switch {
	case h.Buffer < 0:
		return fmt.Errorf("buffer: must be positive")
	case h.WriteTimeout < 0:
		return fmt.Errorf("write_timeout: must be positive")
	case h.PingInterval < 0:
		return fmt.Errorf("ping_interval: must be positive")
	case h.CloseDelay < 0:
		return fmt.Errorf("close_delay: must not be negative")
	case h.MaxSubscriptions < 0:
		return fmt.Errorf("max_subscriptions: must be positive")
	case h.ReadLimit < 0:
		return fmt.Errorf("read_limit: must be positive")
	}
	for i, o := range h.Origins {
		if _, err := path.Match(strings.ToLower(o), ""); err != nil {
			return fmt.Errorf("origins %d: bad pattern %q: %v", i, o, err)
		}
	}
	return nil
}

// ServeHTTP upgrades an authenticated request to a WebSocket and serves the
// feed until the client leaves, reads too slowly, or the config is unloaded.
func (h *WSStatus) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		return Error(CodeMethodNotAllowed, "a WebSocket starts with GET", nil)
	}
	if !IsWebSocketUpgrade(r) {
		w.Header().Set("Upgrade", "websocket")
		return Error(CodeUpgradeRequired, "this endpoint speaks WebSocket only", nil)
	}
	if r.Header.Get("Sec-WebSocket-Key") == "" || r.Header.Get("Sec-WebSocket-Version") != "13" {
		w.Header().Set("Sec-WebSocket-Version", "13")
		return Error(CodeBadRequest, "a WebSocket upgrade needs Sec-WebSocket-Key and Sec-WebSocket-Version 13", nil)
	}
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl == nil {
		return Error(CodeInternalError, "", errors.New("no replacer in the request context"))
	}
	clientID := repl.ReplaceAll("{http.auth.user.id}", "")
	if clientID == "" {
		return Error(CodeUnauthorized, "no authenticated client: put jwt_auth before ws_status", nil)
	}
	if offered := headerTokens(r.Header, "Sec-WebSocket-Protocol"); len(offered) > 0 && !containsFold(offered, WSSubprotocol) {
		return Error(CodeBadRequest, "the offered subprotocols must include "+WSSubprotocol, nil)
	}
	if err := h.checkOrigin(r); err != nil {
		return Error(CodeForbidden, "this origin may not open the status WebSocket", err)
	}
	admin := hasRole(repl.ReplaceAll("{http.auth.user.role}", ""), h.AdminRole)

	h.mu.Lock()
	closed := h.closed
	if !closed {
		h.conns.Add(1) // Done by the socket's goroutine, or below on failure
	}
	h.mu.Unlock()
	served := false
	defer func() {
		if !closed && !served {
			h.conns.Done()
		}
	}()

	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols:       []string{WSSubprotocol},
		InsecureSkipVerify: true, // checkOrigin did it, with our error body
	})
	if err != nil {
		// Accept wrote the response; the handshake failed on the client's side.
		if c := h.logger.Check(zapcore.DebugLevel, "websocket handshake failed"); c != nil {
			c.Write(zap.Error(err))
		}
		return nil
	}
	if closed {
		// this config is being unloaded: send the client to the next one
		_ = c.Close(websocket.StatusServiceRestart, "server reloading: reconnect")
		return nil
	}
	h.tickOnce.Do(func() { go h.tick() })
	// The socket is served on a goroutine of its own and ServeHTTP returns
	// (the access log then records the handshake): the request's goroutine
	// holds a deep stack and Caddy's per-request state, which a long-lived
	// socket need not keep (about half the memory of an idle socket).
	// Cleanup waits for these goroutines; none outlives its config.
	first := h.connectSnapshot()
	lang := r.Header.Get("Accept-Language")
	served = true
	go func() {
		defer h.conns.Done()
		h.serve(c, clientID, admin, lang, first)
	}()
	return nil
}

// Cleanup closes the sockets (after close_delay on a reload), stops the
// snapshot ticker and unsubscribes from the app's events.
func (h *WSStatus) Cleanup() error {
	if h.closing == nil {
		return nil // Provision never ran
	}
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	if d := time.Duration(h.CloseDelay); d > 0 && !caddy.Exiting() {
		time.AfterFunc(d, func() { h.shutdown() })
		return nil
	}
	return h.shutdown()
}

// shutdown closes every socket and waits (a bounded time) for them, then
// releases what Provision acquired.
func (h *WSStatus) shutdown() error {
	var err error
	h.stopOnce.Do(func() {
		close(h.closing)
		done := make(chan struct{})
		go func() {
			h.conns.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(wsShutdownWait):
			h.logger.Warn("status websockets still closing after the wait", zap.Duration("wait", wsShutdownWait))
		}
		h.tickOnce.Do(func() { close(h.tickDone) }) // the ticker never started
		<-h.tickDone
		if h.unsubscribe != nil {
			h.unsubscribe()
		}
		if h.src != nil {
			err = h.src.close()
		}
	})
	return err
}

// closeReason is why serve closes a socket.
type closeReason int

const (
	closePeer     closeReason = iota // the client closed it, or the connection failed
	closeEvicted                     // the client read too slowly
	closeServer                      // the config is being unloaded
	closeWriteErr                    // a write or ping failed or timed out
)

// serve runs one socket: a reader goroutine for the client's messages, and
// this goroutine writing queued messages and pings.
func (h *WSStatus) serve(c *websocket.Conn, clientID string, admin bool, lang string, first []byte) {
	wsClients.Add(1)
	defer wsClients.Add(-1)
	c.SetReadLimit(h.ReadLimit)

	// Cancelling ctx drops the connection, which ends a write blocked on a
	// slow client at once. An eviction cancels it (the queue filled because
	// a write is blocked), and so do a write timeout and the close grace.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = c.CloseNow() })
	defer stop()
	sub := h.hub.newSub(clientID, admin, h.Buffer, first)
	sub.onEvict = cancel
	sub.offer(encodeMessage("subscribed", nil, mustJSON(sub.scope()), now().UTC()))
	h.hub.add(sub)
	defer h.hub.remove(sub)

	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		h.readLoop(ctx, c, sub, lang)
	}()

	reason := h.writeLoop(ctx, cancel, c, sub, readDone)
	if sub.isGone() {
		reason = closeEvicted
	}
	// A client that does not answer the close frame within the grace has
	// its connection dropped (cancelling ctx closes it).
	grace := time.AfterFunc(wsCloseGrace, cancel)
	defer grace.Stop()
	switch reason {
	case closeEvicted:
		wsEvictions.Add(1)
		if ce := h.logger.Check(zapcore.DebugLevel, "closing slow status websocket"); ce != nil {
			ce.Write(zap.String("client_id", clientID), zap.Int("buffer", h.Buffer))
		}
		// Usually the cancelled write has closed the connection already; if
		// not, the close frame says why.
		_ = c.Close(websocket.StatusPolicyViolation, "client too slow: messages dropped")
	case closeServer:
		if caddy.Exiting() {
			_ = c.Close(websocket.StatusGoingAway, "server shutting down")
		} else {
			_ = c.Close(websocket.StatusServiceRestart, "server reloading: reconnect")
		}
	case closePeer:
		_ = c.Close(websocket.StatusNormalClosure, "")
	default:
		_ = c.CloseNow()
	}
	cancel()
	<-readDone
}

// writeLoop writes queued messages and pings until a reason to close. A
// write that takes longer than WriteTimeout cancels ctx (cancel), which
// drops the connection. (One watchdog timer per socket, reset for each
// write, costs less than a context with a deadline per message.)
func (h *WSStatus) writeLoop(ctx context.Context, cancel context.CancelFunc, c *websocket.Conn, sub *hubSub, readDone <-chan struct{}) closeReason {
	ping := time.NewTicker(time.Duration(h.PingInterval))
	defer ping.Stop()
	timeout := time.Duration(h.WriteTimeout)
	watchdog := time.AfterFunc(time.Hour, cancel)
	watchdog.Stop()
	defer watchdog.Stop()
	for {
		select {
		case msg := <-sub.send:
			watchdog.Reset(timeout)
			err := c.Write(context.Background(), websocket.MessageText, msg)
			if !watchdog.Stop() || err != nil {
				return closeWriteErr
			}
		case <-ping.C:
			pctx, pcancel := context.WithTimeout(ctx, timeout)
			err := c.Ping(pctx)
			pcancel()
			if err != nil {
				return closeWriteErr
			}
		case <-sub.gone:
			return closeEvicted
		case <-readDone:
			return closePeer
		case <-h.closing:
			return closeServer
		case <-ctx.Done():
			return closeWriteErr
		}
	}
}

// clientMessage is a message from the client.
type clientMessage struct {
	// Action is "subscribe", "unsubscribe", "status" or "ping".
	Action string `json:"action"`
	// RequestID names one request (subscribe, unsubscribe); absent or "*"
	// means all the client's tasks.
	RequestID *string `json:"request_id,omitempty"`
}

// readLoop handles the client's messages until the connection ends.
func (h *WSStatus) readLoop(ctx context.Context, c *websocket.Conn, sub *hubSub, lang string) {
	for {
		typ, data, err := c.Read(ctx)
		if err != nil {
			return
		}
		if typ != websocket.MessageText {
			sub.offer(wsError(CodeBadRequest, "send JSON text messages", lang))
			continue
		}
		var m clientMessage
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&m); err != nil || dec.More() {
			sub.offer(wsError(CodeMalformedJSON, `a message is {"action": "...", "request_id": "..."}`, lang))
			continue
		}
		sub.offer(h.handleAction(sub, m, lang))
	}
}

// handleAction carries out one client message and returns the answer.
func (h *WSStatus) handleAction(sub *hubSub, m clientMessage, lang string) []byte {
	id := ""
	if m.RequestID != nil {
		id = *m.RequestID
	}
	if id != "*" && (len(id) > maxRequestIDLen || strings.IndexFunc(id, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0) {
		return wsError(CodeValidationError, fmt.Sprintf("request_id: at most %d printable characters", maxRequestIDLen), lang)
	}
	switch m.Action {
	case "subscribe":
		if id == "" || id == "*" {
			sub.subscribeAll()
		} else if !sub.subscribeID(id, h.MaxSubscriptions) {
			return wsError(CodeValidationError, fmt.Sprintf("at most %d request ids per socket", h.MaxSubscriptions), lang)
		}
	case "unsubscribe":
		if id == "*" {
			id = ""
		}
		sub.unsubscribeID(id)
	case "status":
		return h.connectSnapshot()
	case "ping":
		return encodeMessage("pong", nil, json.RawMessage("{}"), now().UTC())
	default:
		return wsError(CodeValidationError, fmt.Sprintf("action: %q is not one of subscribe, unsubscribe, status, ping", m.Action), lang)
	}
	var rid *string
	if id != "" && id != "*" {
		rid = &id
	}
	return encodeMessage("subscribed", rid, mustJSON(sub.scope()), now().UTC())
}

// wsErrorData is the data of an "error" message: the error body of the
// HTTP API, without its timestamp (the message has one).
type wsErrorData struct {
	Error  string `json:"error"`
	Detail string `json:"detail"`
	Code   string `json:"code"`
}

// wsError encodes an "error" message for code in the client's language.
func wsError(code, detail, lang string) []byte {
	return encodeMessage("error", nil, mustJSON(wsErrorData{Error: Message(code, lang), Detail: detail, Code: code}), now().UTC())
}

// tick broadcasts a status snapshot every StatusInterval until shutdown.
func (h *WSStatus) tick() {
	defer close(h.tickDone)
	iv := time.Duration(h.StatusInterval)
	if iv < 0 {
		<-h.closing
		return
	}
	t := time.NewTicker(iv)
	defer t.Stop()
	// the periodic snapshots carry the seconds since the previous one, and
	// one more, so a client can append them to its chart
	seconds := min(int(iv/time.Second)+2, seriesSeconds)
	for {
		select {
		case <-t.C:
			if h.hub.len() == 0 {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), DefaultQueueWait)
			st := h.src.snapshot(ctx, DefaultQueueWait, statusOptions{seriesSeconds: seconds})
			cancel()
			h.hub.broadcast(encodeMessage("status", nil, mustJSON(st), st.Timestamp))
		case <-h.closing:
			return
		}
	}
}

// connectSnapshot returns the encoded snapshot a new socket gets first, with
// the full time series; it is built at most once per connectSnapshotTTL.
// It never waits for the broker (queue lengths come from the cache).
func (h *WSStatus) connectSnapshot() []byte {
	h.snapMu.Lock()
	defer h.snapMu.Unlock()
	t := now()
	if h.snapFull != nil && t.Sub(h.snapFullAt) < connectSnapshotTTL {
		return h.snapFull
	}
	st := h.src.snapshot(context.Background(), 0, statusOptions{seriesSeconds: seriesSeconds})
	h.snapFull = encodeMessage("status", nil, mustJSON(st), st.Timestamp)
	h.snapFullAt = t
	return h.snapFull
}

// checkOrigin allows requests with no Origin, from the request's own host,
// and from the configured origins.
func (h *WSStatus) checkOrigin(r *http.Request) error {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return fmt.Errorf("bad Origin header %q", origin)
	}
	if strings.EqualFold(u.Host, r.Host) {
		return nil
	}
	for _, p := range h.Origins {
		target := u.Host
		if strings.Contains(p, "://") {
			target = u.Scheme + "://" + u.Host
		}
		if ok, _ := path.Match(strings.ToLower(p), strings.ToLower(target)); ok {
			return nil
		}
	}
	return fmt.Errorf("origin %q is not allowed", origin)
}

// hasRole reports whether a role list (separated by commas or spaces)
// contains role.
func hasRole(roles, role string) bool {
	if role == "" {
		return false
	}
	for _, r := range strings.FieldsFunc(roles, func(c rune) bool { return c == ',' || c == ' ' }) {
		if r == role {
			return true
		}
	}
	return false
}

// IsWebSocketUpgrade reports whether r asks to upgrade to a WebSocket
// (Connection: upgrade and Upgrade: websocket).
func IsWebSocketUpgrade(r *http.Request) bool {
	return containsFold(headerTokens(r.Header, "Connection"), "upgrade") &&
		containsFold(headerTokens(r.Header, "Upgrade"), "websocket")
}

// WebSocketTokenPrefix marks the subprotocol that carries a bearer token.
const WebSocketTokenPrefix = "bearer."

// WebSocketToken returns the bearer token a WebSocket client sent in place
// of an Authorization header, which browsers cannot set on a WebSocket:
// a "bearer.<token>" entry of the Sec-WebSocket-Protocol header (the client
// offers it beside "scrapegate.v1", which is the one the server echoes), or
// else the "token" query parameter. It returns "" for a request that is not
// a WebSocket upgrade, or that has none. Authentication providers call it
// when the request has no Authorization header.
//
// Tokens in a query string or a header other than Authorization end up in
// access logs unless the log filters them (see the README).
func WebSocketToken(r *http.Request) string {
	if !IsWebSocketUpgrade(r) {
		return ""
	}
	for _, p := range headerTokens(r.Header, "Sec-WebSocket-Protocol") {
		if len(p) > len(WebSocketTokenPrefix) && strings.EqualFold(p[:len(WebSocketTokenPrefix)], WebSocketTokenPrefix) {
			return p[len(WebSocketTokenPrefix):]
		}
	}
	return r.URL.Query().Get("token")
}

// headerTokens returns the comma-separated tokens of every value of a header, trimmed.
func headerTokens(h http.Header, key string) []string {
	var out []string
	for _, v := range h.Values(key) {
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				out = append(out, t)
			}
		}
	}
	return out
}

// containsFold reports whether list holds s, ignoring case.
func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// Interface guards
var (
	_ caddy.Provisioner           = (*WSStatus)(nil)
	_ caddy.Validator             = (*WSStatus)(nil)
	_ caddy.CleanerUpper          = (*WSStatus)(nil)
	_ caddyhttp.MiddlewareHandler = (*WSStatus)(nil)
)

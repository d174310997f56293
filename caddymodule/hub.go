package caddymodule

import (
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scrapegate/scrapegate/internal/jsonraw"
	"github.com/scrapegate/scrapegate/rpc"
)

// hub fans task events and status snapshots out to WebSocket subscribers.
// It is plain Go (no Caddy, no network): the ws_status handler owns one and
// feeds it from the scrapegate app's event subscription.
//
// Delivery never blocks: every subscriber has a bounded queue of encoded
// messages, and one whose queue is full is evicted (its gone channel is
// closed; its owner closes the socket), so a slow client can never stall the
// event goroutine or the other clients. An event is encoded once, however
// many subscribers get it.
type hub struct {
	mu       sync.RWMutex
	byClient map[string]map[*hubSub]struct{} // non-admin subscribers by client id
	admins   map[*hubSub]struct{}            // subscribers who may see every client's events
	n        int

	evicted atomic.Uint64
}

// newHub returns an empty hub.
func newHub() *hub {
	return &hub{
		byClient: make(map[string]map[*hubSub]struct{}),
		admins:   make(map[*hubSub]struct{}),
	}
}

// hubSub is one subscriber: a socket's queue and what it wants to see.
type hubSub struct {
	clientID string
	admin    bool
	send     chan []byte // bounded queue of encoded messages
	gone     chan struct{}
	goneOnce sync.Once
	filter   atomic.Pointer[subFilter]
	h        *hub
	// onEvict, if set before add, is called once when s is evicted (on the
	// publisher's goroutine: it must not block).
	onEvict func()
}

// subFilter is what task events a subscriber wants; it is replaced, never
// changed, so the hub reads it without a lock.
type subFilter struct {
	// all: every task of the subscriber's client (every task at all for an admin).
	all bool
	// ids: only these request ids (when !all).
	ids map[string]struct{}
}

// newSub returns a subscriber with a queue of buffer messages that wants all
// its client's events; first, when not nil, is queued before anything else.
// It receives nothing until added with add.
func (h *hub) newSub(clientID string, admin bool, buffer int, first []byte) *hubSub {
	s := &hubSub{
		clientID: clientID,
		admin:    admin,
		send:     make(chan []byte, max(buffer, 1)),
		gone:     make(chan struct{}),
		h:        h,
	}
	s.filter.Store(&subFilter{all: true})
	if first != nil {
		s.send <- first
	}
	return s
}

// add registers s; from now on it receives events and broadcasts.
func (h *hub) add(s *hubSub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.admin {
		h.admins[s] = struct{}{}
	} else {
		m := h.byClient[s.clientID]
		if m == nil {
			m = make(map[*hubSub]struct{})
			h.byClient[s.clientID] = m
		}
		m[s] = struct{}{}
	}
	h.n++
}

// remove unregisters s (idempotent).
func (h *hub) remove(s *hubSub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.admin {
		if _, ok := h.admins[s]; ok {
			delete(h.admins, s)
			h.n--
		}
		return
	}
	m := h.byClient[s.clientID]
	if _, ok := m[s]; !ok {
		return
	}
	delete(m, s)
	if len(m) == 0 {
		delete(h.byClient, s.clientID)
	}
	h.n--
}

// len returns the number of subscribers.
func (h *hub) len() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.n
}

// publish delivers a task event to the subscribers who may and want to see
// it: those of its client, and admins. It never blocks.
func (h *hub) publish(ev rpc.Event) {
	var msg []byte // encoded on the first match
	deliver := func(s *hubSub) {
		if !s.wants(ev.RequestID) {
			return
		}
		if msg == nil {
			msg = encodeEvent(ev)
		}
		s.offer(msg)
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	if ev.ClientID != "" {
		for s := range h.byClient[ev.ClientID] {
			deliver(s)
		}
	}
	for s := range h.admins {
		deliver(s)
	}
}

// broadcast queues msg for every subscriber. It never blocks.
func (h *hub) broadcast(msg []byte) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, m := range h.byClient {
		for s := range m {
			s.offer(msg)
		}
	}
	for s := range h.admins {
		s.offer(msg)
	}
}

// wants reports whether s wants the events of requestID.
func (s *hubSub) wants(requestID string) bool {
	f := s.filter.Load()
	if f.all {
		return true
	}
	_, ok := f.ids[requestID]
	return ok
}

// offer queues msg without blocking; when the queue is full, s is evicted
// and the message dropped. It reports whether msg was queued.
func (s *hubSub) offer(msg []byte) bool {
	select {
	case <-s.gone:
		return false
	default:
	}
	select {
	case s.send <- msg:
		return true
	default:
		s.evict()
		return false
	}
}

// evict marks s as too slow: gone is closed, and its owner closes the socket.
func (s *hubSub) evict() {
	s.goneOnce.Do(func() {
		s.h.evicted.Add(1)
		close(s.gone)
		if s.onEvict != nil {
			s.onEvict()
		}
	})
}

// isGone reports whether s was evicted.
func (s *hubSub) isGone() bool {
	select {
	case <-s.gone:
		return true
	default:
		return false
	}
}

// subscribeAll makes s want every task of its client.
func (s *hubSub) subscribeAll() { s.filter.Store(&subFilter{all: true}) }

// subscribeID adds a request id to what s wants; a subscriber that wanted
// all its tasks now wants only this one. It reports false, changing nothing,
// when s already follows limit ids.
func (s *hubSub) subscribeID(id string, limit int) bool {
	old := s.filter.Load()
	next := &subFilter{ids: make(map[string]struct{}, 1)}
	if !old.all {
		if _, ok := old.ids[id]; ok {
			return true
		}
		if len(old.ids) >= limit {
			return false
		}
		for k := range old.ids {
			next.ids[k] = struct{}{}
		}
	}
	next.ids[id] = struct{}{}
	s.filter.Store(next)
	return true
}

// unsubscribeID removes one request id; without an id (""), s wants no task
// events at all (status snapshots still come).
func (s *hubSub) unsubscribeID(id string) {
	old := s.filter.Load()
	next := &subFilter{ids: make(map[string]struct{})}
	if id != "" && !old.all {
		for k := range old.ids {
			if k != id {
				next.ids[k] = struct{}{}
			}
		}
	}
	s.filter.Store(next)
}

// scope describes what s follows, for the "subscribed" message.
func (s *hubSub) scope() subscribedData {
	f := s.filter.Load()
	d := subscribedData{ClientID: s.clientID, Admin: s.admin, RequestIDs: []string{}}
	if f.all {
		d.Scope = "all"
		return d
	}
	d.Scope = "request_ids"
	for id := range f.ids {
		d.RequestIDs = append(d.RequestIDs, id)
	}
	return d
}

// subscribedData is the data of a "subscribed" message: what the socket
// now receives.
type subscribedData struct {
	// ClientID is the authenticated client the socket belongs to.
	ClientID string `json:"client_id"`
	// Admin is true when the socket may see every client's tasks.
	Admin bool `json:"admin"`
	// Scope is "all" (every task of the client; of every client for an
	// admin) or "request_ids" (only RequestIDs; none when it is empty).
	Scope string `json:"scope"`
	// RequestIDs are the followed request ids when Scope is "request_ids".
	RequestIDs []string `json:"request_ids"`
}

// encodeEvent encodes a task event as a WebSocketMessage: its type, its
// request id, the event itself (as published on scrape.events) as data, and
// its timestamp.
func encodeEvent(ev rpc.Event) []byte {
	data, err := json.Marshal(ev)
	if err != nil {
		// only an invalid Data (not JSON) can fail: send it without
		ev.Data = nil
		data, _ = json.Marshal(ev)
	}
	ts := ev.Timestamp
	if ts.IsZero() {
		ts = time.Now().UTC()
	}
	rid := ev.RequestID
	return encodeMessage(ev.Type, &rid, data, ts)
}

// encodeMessage encodes a WebSocketMessage. data must be valid JSON (nil
// for null); it is embedded as is. This is json.Marshal of a
// WebSocketMessage without validating and compacting data a second time,
// which is most of the cost of an event with a large payload.
func encodeMessage(typ string, requestID *string, data json.RawMessage, ts time.Time) []byte {
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	stamp, err := ts.MarshalJSON()
	if err != nil { // a year outside 0..9999
		stamp, _ = time.Now().UTC().MarshalJSON()
	}
	b := make([]byte, 0, len(data)+len(typ)+len(stamp)+96)
	b = append(b, `{"type":`...)
	b = jsonraw.AppendString(b, typ)
	b = append(b, `,"request_id":`...)
	if requestID == nil {
		b = append(b, "null"...)
	} else {
		b = jsonraw.AppendString(b, *requestID)
	}
	b = append(b, `,"data":`...)
	b = append(b, data...)
	b = append(b, `,"timestamp":`...)
	b = append(b, stamp...)
	return append(b, '}')
}

// mustJSON marshals v, which is a type of ours that always marshals.
func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return json.RawMessage("null")
	}
	return b
}

package caddymodule

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/scrapegate/scrapegate/rpc"
)

// drain returns the messages queued for s, decoded.
func drain(t *testing.T, s *hubSub) []WebSocketMessage {
	t.Helper()
	var out []WebSocketMessage
	for {
		select {
		case b := <-s.send:
			var m WebSocketMessage
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("bad message %s: %v", b, err)
			}
			out = append(out, m)
		default:
			return out
		}
	}
}

func ev(typ, client, req string) rpc.Event {
	return rpc.Event{Type: typ, RequestID: req, ClientID: client, ScriptName: "echo",
		Data: json.RawMessage(`{"n":1}`), Timestamp: time.Unix(1_700_000_000, 0).UTC()}
}

func TestHubDeliversOwnEventsOnly(t *testing.T) {
	h := newHub()
	a := h.newSub("A", false, 16, nil)
	b := h.newSub("B", false, 16, nil)
	admin := h.newSub("ops", true, 16, nil)
	for _, s := range []*hubSub{a, b, admin} {
		h.add(s)
	}
	h.publish(ev(rpc.EventStarted, "A", "r1"))
	h.publish(ev(rpc.EventCompleted, "A", "r1"))
	h.publish(ev(rpc.EventStarted, "", "r0")) // no client: admins only

	got := drain(t, a)
	if len(got) != 2 || got[0].Type != rpc.EventStarted || got[1].Type != rpc.EventCompleted {
		t.Fatalf("A got %+v, want started then completed", got)
	}
	if got[0].RequestID == nil || *got[0].RequestID != "r1" {
		t.Errorf("request_id = %v", got[0].RequestID)
	}
	var data rpc.Event
	if err := json.Unmarshal(got[0].Data, &data); err != nil || data.ClientID != "A" || data.ScriptName != "echo" || string(data.Data) != `{"n":1}` {
		t.Errorf("data = %s (%v), want the event itself", got[0].Data, err)
	}
	if !got[0].Timestamp.Equal(time.Unix(1_700_000_000, 0)) {
		t.Errorf("timestamp = %v, want the event's", got[0].Timestamp)
	}
	if got := drain(t, b); len(got) != 0 {
		t.Errorf("B got %d messages of A's task", len(got))
	}
	if got := drain(t, admin); len(got) != 3 {
		t.Errorf("admin got %d messages, want all 3", len(got))
	}

	h.remove(a)
	h.remove(a) // idempotent
	h.publish(ev(rpc.EventStarted, "A", "r2"))
	if got := drain(t, a); len(got) != 0 {
		t.Errorf("removed subscriber got %d messages", len(got))
	}
	if h.len() != 2 {
		t.Errorf("len = %d, want 2", h.len())
	}
}

func TestHubSubscribeToRequestIDs(t *testing.T) {
	h := newHub()
	a := h.newSub("A", false, 16, nil)
	admin := h.newSub("ops", true, 16, nil)
	h.add(a)
	h.add(admin)

	if !a.subscribeID("r2", 2) || !a.subscribeID("r3", 2) || !a.subscribeID("r3", 2) {
		t.Fatal("subscribing within the limit failed")
	}
	if a.subscribeID("r4", 2) {
		t.Fatal("a third id passed a limit of 2")
	}
	if !admin.subscribeID("rB", 5) {
		t.Fatal("admin subscribe failed")
	}
	for _, r := range []string{"r1", "r2", "r3"} {
		h.publish(ev(rpc.EventStarted, "A", r))
	}
	h.publish(ev(rpc.EventStarted, "B", "rB"))

	var ids []string
	for _, m := range drain(t, a) {
		ids = append(ids, *m.RequestID)
	}
	if fmt.Sprint(ids) != "[r2 r3]" {
		t.Errorf("A with r2, r3 got %v", ids)
	}
	if got := drain(t, admin); len(got) != 1 || *got[0].RequestID != "rB" {
		t.Errorf("admin following rB got %+v", got)
	}

	a.unsubscribeID("r2")
	h.publish(ev(rpc.EventCompleted, "A", "r2"))
	h.publish(ev(rpc.EventCompleted, "A", "r3"))
	if got := drain(t, a); len(got) != 1 || *got[0].RequestID != "r3" {
		t.Errorf("after unsubscribing r2 got %+v", got)
	}
	if sc := a.scope(); sc.Scope != "request_ids" || fmt.Sprint(sc.RequestIDs) != "[r3]" {
		t.Errorf("scope = %+v", sc)
	}

	a.unsubscribeID("")
	h.publish(ev(rpc.EventCompleted, "A", "r3"))
	if got := drain(t, a); len(got) != 0 {
		t.Errorf("unsubscribed from all got %d", len(got))
	}
	a.subscribeAll()
	h.publish(ev(rpc.EventCompleted, "A", "r9"))
	if got := drain(t, a); len(got) != 1 {
		t.Errorf("subscribed to all again got %d", len(got))
	}
	if sc := a.scope(); sc.Scope != "all" || sc.ClientID != "A" || sc.Admin {
		t.Errorf("scope = %+v", sc)
	}
}

func TestHubEvictsSlowSubscriber(t *testing.T) {
	h := newHub()
	slow := h.newSub("A", false, 4, []byte(`{"type":"status"}`))
	fast := h.newSub("A", false, 4, nil)
	h.add(slow)
	h.add(fast)
	before := h.evicted.Load()

	var got int
	for i := range 20 {
		h.publish(ev(rpc.EventStarted, "A", fmt.Sprint(i)))
		got += len(drain(t, fast)) // fast reads as it goes
	}
	if got != 20 {
		t.Errorf("fast subscriber got %d of 20", got)
	}
	select {
	case <-slow.gone:
	default:
		t.Fatal("slow subscriber not evicted")
	}
	if h.evicted.Load() != before+1 {
		t.Errorf("evicted counter = %d, want %d", h.evicted.Load(), before+1)
	}
	if slow.offer([]byte("x")) {
		t.Error("an evicted subscriber accepted a message")
	}
	// its queue kept what fit: the first message queued, then 3 events
	if first := drain(t, slow); len(first) != 4 || first[0].Type != "status" {
		t.Errorf("slow queue = %+v", first)
	}
}

func TestHubBroadcast(t *testing.T) {
	h := newHub()
	var subs []*hubSub
	for i := range 5 {
		s := h.newSub(fmt.Sprint("c", i%2), i == 4, 4, nil)
		h.add(s)
		subs = append(subs, s)
	}
	msg := encodeMessage("status", nil, json.RawMessage(`{}`), time.Now())
	h.broadcast(msg)
	for i, s := range subs {
		if got := drain(t, s); len(got) != 1 || got[0].Type != "status" {
			t.Errorf("subscriber %d got %+v", i, got)
		}
	}
}

func TestEncodeEventWithBadData(t *testing.T) {
	e := ev(rpc.EventFailed, "A", "r1")
	e.Data = json.RawMessage(`{not json`)
	var m WebSocketMessage
	if err := json.Unmarshal(encodeEvent(e), &m); err != nil {
		t.Fatalf("event with bad data encoded badly: %v", err)
	}
	if m.Type != rpc.EventFailed {
		t.Errorf("type = %q", m.Type)
	}
}

func TestEncodeMessageMatchesType(t *testing.T) {
	rid := "r-\"1\"<&>"
	ts := time.Date(2026, 11, 26, 3, 4, 5, 6000, time.UTC)
	for _, tc := range []struct {
		typ  string
		rid  *string
		data json.RawMessage
	}{
		{"status", nil, json.RawMessage(`{"a":[1,2,{"b":null}]}`)},
		{"task.started", &rid, json.RawMessage(`"x"`)},
		{"pong\u2028", nil, nil},
	} {
		got := encodeMessage(tc.typ, tc.rid, tc.data, ts)
		want, _ := json.Marshal(WebSocketMessage{Type: tc.typ, RequestID: tc.rid, Data: tc.data, Timestamp: ts})
		var g, w any
		if err := json.Unmarshal(got, &g); err != nil {
			t.Fatalf("%s is not JSON: %v", got, err)
		}
		_ = json.Unmarshal(want, &w)
		if fmt.Sprint(g) != fmt.Sprint(w) {
			t.Errorf("encodeMessage = %s, want %s", got, want)
		}
	}
	// an out-of-range timestamp still encodes
	if err := json.Unmarshal(encodeMessage("x", nil, nil, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)), new(any)); err != nil {
		t.Error(err)
	}
}

// BenchmarkHubPublish fans one event out to one socket among 10,000 clients.
func BenchmarkHubPublish(b *testing.B) {
	h := newHub()
	subs := make([]*hubSub, 10_000)
	for i := range subs {
		subs[i] = h.newSub(fmt.Sprint("c", i), false, 4, nil)
		h.add(subs[i])
	}
	events := make([]rpc.Event, len(subs))
	for i := range events {
		events[i] = ev(rpc.EventStarted, fmt.Sprint("c", i), fmt.Sprint("r", i))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j := i % len(subs)
		h.publish(events[j])
		<-subs[j].send
	}
}

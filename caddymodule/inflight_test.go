package caddymodule

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// newInFlight provisions a scrape_in_flight handler and cleans it up when
// the test ends.
func newInFlight(t *testing.T, h *InFlight) *InFlight {
	t.Helper()
	if err := h.Provision(testContext(t)); err != nil {
		t.Fatal(err)
	}
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Cleanup() })
	return h
}

// inFlightCall runs h for client; next blocks until release is closed.
func inFlightCall(h *InFlight, client string, entered chan<- struct{}, release <-chan struct{}) (*httptest.ResponseRecorder, error) {
	r := httptest.NewRequest(http.MethodPost, "/scrape", nil)
	repl := caddyhttp.NewTestReplacer(r)
	repl.Set("http.auth.user.id", client)
	w := httptest.NewRecorder()
	err := h.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		if entered != nil {
			entered <- struct{}{}
		}
		<-release
		return nil
	}))
	return w, err
}

// TestInFlightCap holds the cap under concurrent calls: exactly max of one
// client's calls get through, the others are 429 TOO_MANY_IN_FLIGHT, other
// clients are not affected, and the count falls back to zero.
func TestInFlightCap(t *testing.T) {
	const max, callers = 3, 20
	h := newInFlight(t, &InFlight{Max: max, Zone: t.Name()})
	release := make(chan struct{})
	entered := make(chan struct{}, callers)

	var passed, refused atomic.Int64
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			w, err := inFlightCall(h, "alice", entered, release)
			if err == nil {
				passed.Add(1)
				return
			}
			var ce *CodedError
			var he caddyhttp.HandlerError
			if !errors.As(err, &ce) || ce.Code != CodeTooManyInFlight || !errors.As(err, &he) || he.StatusCode != http.StatusTooManyRequests {
				t.Errorf("error = %v", err)
			}
			if w.Header().Get("Retry-After") != "1" {
				t.Errorf("Retry-After = %q", w.Header().Get("Retry-After"))
			}
			refused.Add(1)
		})
	}
	for range max {
		<-entered
	}
	// the refused ones return at once; wait until all are counted
	for refused.Load() != callers-max {
		if passed.Load() > 0 {
			t.Fatal("a call finished before its release")
		}
		time.Sleep(time.Millisecond)
	}
	if got := h.counter.inFlight("alice"); got != max {
		t.Fatalf("in flight = %d, want %d", got, max)
	}
	// another client is not held by alice's calls
	done := make(chan error, 1)
	go func() { _, err := inFlightCall(h, "bob", nil, release); done <- err }()
	close(release)
	wg.Wait()
	if err := <-done; err != nil {
		t.Fatalf("bob: %v", err)
	}
	if passed.Load() != max || refused.Load() != callers-max {
		t.Fatalf("passed %d, refused %d", passed.Load(), refused.Load())
	}
	if got := h.counter.inFlight("alice"); got != 0 {
		t.Fatalf("in flight after the calls = %d", got)
	}
}

// TestInFlightAcrossReload checks that a new handler of the same zone (a
// config reload) sees the calls the old one still has in flight.
func TestInFlightAcrossReload(t *testing.T) {
	old := newInFlight(t, &InFlight{Max: 1, Zone: t.Name()})
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() { _, err := inFlightCall(old, "alice", entered, release); done <- err }()
	<-entered

	next := newInFlight(t, &InFlight{Max: 1, Zone: t.Name()})
	if err := old.Cleanup(); err != nil { // the old config goes after the new one started
		t.Fatal(err)
	}
	if _, err := inFlightCall(next, "alice", nil, release); err == nil {
		t.Fatal("the reloaded handler let a second call through")
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := inFlightCall(next, "alice", nil, release); err != nil {
		t.Fatalf("after the call ended: %v", err)
	}
}

// TestInFlightCaddyfile checks the directive's parsing.
func TestInFlightCaddyfile(t *testing.T) {
	h := new(InFlight)
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("scrape_in_flight 8 {\nkey {http.request.remote.host}\nzone z\n}")); err != nil {
		t.Fatal(err)
	}
	if h.Max != 8 || h.Key != "{http.request.remote.host}" || h.Zone != "z" {
		t.Fatalf("got %+v", h)
	}
	for _, bad := range []string{"scrape_in_flight", "scrape_in_flight 0", "scrape_in_flight -1", "scrape_in_flight many",
		"scrape_in_flight 1 2", "scrape_in_flight 1 {\nkey\n}", "scrape_in_flight 1 {\nkey a\nkey b\n}", "scrape_in_flight 1 {\nfoo x\n}"} {
		if err := new(InFlight).UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	if err := (&InFlight{}).Validate(); err == nil {
		t.Error("max 0 validated")
	}
}

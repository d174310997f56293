package e2e

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/scrapegate/scrapegate/rpc"
)

// eventsConnectionName is the connection name of the suite's own event
// subscriber; leak checks leave it out.
const eventsConnectionName = "scrapegate-chaos-events"

// chaosEvent is one task event the suite saw on scrape.events.
type chaosEvent struct {
	Type      string
	RequestID string
	ClientID  string
	WorkerID  string
	// TS is the event's own timestamp (the worker's clock: this machine's).
	TS time.Time
}

// eventRecorder subscribes to every task event (task.#) of the suite's vhost
// with a durable queue of its own, so that a connection close loses nothing
// (a broker restart loses the transient events it held), and reconnects
// until it is closed.
type eventRecorder struct {
	url   string
	queue string

	mu         sync.Mutex
	events     []chaosEvent
	reconnects int

	done    chan struct{}
	stopped chan struct{}
}

// startEventRecorder declares the recorder's queue (scrape.events must exist:
// start it once a worker is up) and consumes it in the background until the
// test ends.
func startEventRecorder(t *testing.T, url string) *eventRecorder {
	t.Helper()
	r := &eventRecorder{
		url:     url,
		queue:   "scrapegate-chaos-events-" + randHex(4),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	conn, ch, deliveries, err := r.subscribe()
	if err != nil {
		t.Fatalf("subscribing to %s: %v", rpc.EventExchange, err)
	}
	go r.run(conn, ch, deliveries)
	t.Cleanup(r.close)
	return r
}

// subscribe connects, declares and binds the queue and starts consuming.
func (r *eventRecorder) subscribe() (*amqp.Connection, *amqp.Channel, <-chan amqp.Delivery, error) {
	conn, err := amqp.DialConfig(r.url, amqp.Config{
		Properties: amqp.Table{"connection_name": eventsConnectionName},
		Heartbeat:  5 * time.Second,
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("dialing: %w", err)
	}
	ch, err := conn.Channel()
	if err == nil {
		_, err = ch.QueueDeclare(r.queue, true, false, false, false, nil)
	}
	if err == nil {
		err = ch.QueueBind(r.queue, "task.#", rpc.EventExchange, false, nil)
	}
	var deliveries <-chan amqp.Delivery
	if err == nil {
		deliveries, err = ch.Consume(r.queue, "", true, false, false, false, nil)
	}
	if err != nil {
		conn.Close()
		return nil, nil, nil, err
	}
	return conn, ch, deliveries, nil
}

// run consumes until close, reconnecting whenever the link drops.
func (r *eventRecorder) run(conn *amqp.Connection, _ *amqp.Channel, deliveries <-chan amqp.Delivery) {
	defer close(r.stopped)
	for {
		r.consume(deliveries)
		conn.Close()
		for {
			select {
			case <-r.done:
				return
			case <-time.After(200 * time.Millisecond):
			}
			var err error
			if conn, _, deliveries, err = r.subscribe(); err == nil {
				r.mu.Lock()
				r.reconnects++
				r.mu.Unlock()
				break
			}
		}
	}
}

// consume records deliveries until the channel closes or the recorder does.
func (r *eventRecorder) consume(deliveries <-chan amqp.Delivery) {
	for {
		select {
		case <-r.done:
			return
		case d, ok := <-deliveries:
			if !ok {
				return
			}
			var e rpc.Event
			if err := json.Unmarshal(d.Body, &e); err != nil {
				continue
			}
			ce := chaosEvent{Type: e.Type, RequestID: e.RequestID, ClientID: e.ClientID, TS: e.Timestamp}
			if e.WorkerID != nil {
				ce.WorkerID = *e.WorkerID
			}
			r.mu.Lock()
			r.events = append(r.events, ce)
			r.mu.Unlock()
		}
	}
}

// Events returns a copy of every event recorded so far.
func (r *eventRecorder) Events() []chaosEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]chaosEvent(nil), r.events...)
}

// Count returns how many events were recorded so far.
func (r *eventRecorder) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

// close stops the recorder; its goroutine is gone when close returns.
func (r *eventRecorder) close() {
	select {
	case <-r.done:
	default:
		close(r.done)
	}
	<-r.stopped
}

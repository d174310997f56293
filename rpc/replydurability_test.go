package rpc

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// A reply must be persistent: the worker acks its task once the broker
// confirmed the reply, so a transient reply waiting in the gateway's durable
// reply queue when the broker restarts would be lost with nothing left to
// redeliver, and its caller would time out although its task completed in
// time (found by the fault suite, e2e/chaos_test.go, 136 such calls in one
// `make chaos` run).
func TestReplyIsPersistent(t *testing.T) {
	t.Parallel()
	vh := newVHost(t)
	startServer(t, ServerConfig{URL: vh.url, Concurrency: 1}, echoHandler)

	conn, err := amqp.Dial(vh.url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	replyTo := ReplyQueueName("durability-" + randomID(3))
	if _, err := ch.QueueDeclare(replyTo, true, false, false, false, amqp.Table{"x-expires": int64(60000)}); err != nil {
		t.Fatal(err)
	}
	replies, err := ch.Consume(replyTo, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	id := newRequestID()
	body, _ := json.Marshal(Task{RequestID: id, ScriptName: "echo", Parameters: json.RawMessage(`{"x":1}`), Timeout: 10, ClientID: "test"})
	deadline := time.Now().Add(10 * time.Second)
	if err := ch.Publish(TaskExchange, "echo", true, false, amqp.Publishing{
		ContentType: "application/json", CorrelationId: id, MessageId: id, ReplyTo: replyTo,
		Expiration: "10000", DeliveryMode: amqp.Persistent,
		Headers: amqp.Table{HeaderClientID: "test", HeaderDeadlineMS: deadline.UnixMilli()},
		Body:    body,
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-replies:
		if d.CorrelationId != id {
			t.Fatalf("reply for %q, want %q", d.CorrelationId, id)
		}
		if d.DeliveryMode != amqp.Persistent {
			t.Fatalf("reply delivery mode %s, want %d (persistent)", strconv.Itoa(int(d.DeliveryMode)), amqp.Persistent)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no reply within 10 s")
	}
}

// Package rpc is scrapegate's RPC link over RabbitMQ (AMQP 0-9-1, with
// github.com/rabbitmq/amqp091-go): the Client used by the gateway and the
// Server used by workers, speaking the wire contract of
// shared/design/wire-contract.md. It has no Caddy imports and exports no
// amqp types.
//
// # Topology
//
//   - scrape.tasks (direct, durable): tasks, routed by script name.
//   - scrape.tasks.<pool> (durable, classic or quorum): a pool's queue, bound
//     once per script the pool serves. A quorum queue has x-delivery-limit
//     and dead-letters to scrape.dead (direct, key <pool>) into
//     scrape.tasks.<pool>.dead; the pool's workers answer the poison task's
//     caller (failed, WORKER_ERROR) and park it in scrape.tasks.<pool>.poison.
//   - scrape.events (topic, durable): task.<status> events and
//     worker.heartbeat.
//   - scrape.control (fanout, durable): task.cancel; each worker binds an
//     exclusive auto-delete queue.
//   - scrape.replies.<instance> (durable, not exclusive, x-expires): a
//     gateway's reply queue in ReplyQueue mode; amq.rabbitmq.reply-to in
//     ReplyDirect mode.
//
// # A call
//
// Client.Call encodes the Task as JSON and publishes it to scrape.tasks with
// routing key = script name, mandatory, persistent, correlation_id =
// message_id = the request id, reply_to, expiration = the time left until
// the context's deadline, and the headers x-client-id and x-deadline-ms. The
// caller's goroutine then waits, with no extra goroutine and no polling, on
// the publisher confirm (a nack fails the call with ErrNacked, a basic.return
// with ErrUnknownScript), then on its own result channel, registered in a
// sharded map under the correlation id. Replies are routed to it by one
// consumer per reply queue (or per channel with direct reply-to); a reply
// for no waiting call is counted as late and dropped. When the context ends
// first the call fails with ErrTimeout (deadline) or ErrCanceled
// (cancellation, which also publishes a task.cancel on scrape.control).
//
// Calls are spread over a pool of publishing channels in confirm mode;
// confirms are pipelined (each call waits for its own DeferredConfirmation).
//
// The client listens to worker.heartbeat: a call for a script that some
// worker advertised, but that no live worker advertises now (a worker is
// live while its last heartbeat is younger than three heartbeat intervals),
// fails at once with ErrNoWorkers, once the client has listened for three
// intervals.
//
// # Reconnecting
//
// Both sides keep one named connection, redialled with capped, jittered
// exponential backoff (conn.go) whenever it or any of its channels dies.
// While the link is down, calls fail at once with ErrBrokerUnavailable. A
// call whose task was not yet confirmed when the link dropped fails at once
// with ErrBrokerUnavailable. In ReplyQueue mode a call whose task was
// confirmed keeps waiting until its deadline: the reply waits in the durable
// reply queue, which is consumed again after the reconnect (replies are
// acked only after being handed to their call). In ReplyDirect mode every
// call in flight fails at once, since its reply cannot arrive.
//
// # The server
//
// A Server declares the topology idempotently, binds its pool's queue to
// the Handler's scripts, sets prefetch = concurrency and runs that many task
// goroutines. For each task it: acks and reports task.expired if the
// deadline (x-deadline-ms) passed; acks and skips it if it was cancelled;
// else publishes task.started, runs the Handler with a context that ends at
// the deadline or on task.cancel, publishes the reply (completed, or failed
// with an error code), waits for the broker's confirm of the reply, acks the
// task (at-least-once), and publishes task.completed, task.failed or
// task.cancelled. It publishes worker.heartbeat every heartbeat interval.
// If its link drops, running tasks are cancelled and not answered: the
// broker redelivers them. When Serve's context ends it stops consuming,
// waits for running tasks up to the grace period, then cancels and
// requeues the rest.
package rpc

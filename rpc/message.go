package rpc

import (
	"encoding/json"
	"time"
)

// Topology names of the wire contract (../shared/design/wire-contract.md).
const (
	// TaskExchange is the direct exchange tasks are published to, routed by script name.
	TaskExchange = "scrape.tasks"
	// EventExchange is the topic exchange of task events and worker heartbeats.
	EventExchange = "scrape.events"
	// ControlExchange is the fanout exchange of control messages (task.cancel).
	ControlExchange = "scrape.control"
	// DefaultPool is the worker pool used when none is configured.
	DefaultPool = "default"
	// DirectReplyTo is RabbitMQ's pseudo-queue for direct reply-to.
	DirectReplyTo = "amq.rabbitmq.reply-to"
	// HeaderClientID is the task header naming the client that asked.
	HeaderClientID = "x-client-id"
	// HeaderDeadlineMS is the task header holding the unix epoch milliseconds
	// after which the answer is useless.
	HeaderDeadlineMS = "x-deadline-ms"
	// HeartbeatKey is the routing key of worker heartbeats on EventExchange.
	HeartbeatKey = "worker.heartbeat"
)

// TaskQueueName returns the durable queue of a worker pool.
func TaskQueueName(pool string) string { return TaskExchange + "." + pool }

// ReplyQueueName returns the named reply queue of a gateway instance.
func ReplyQueueName(instanceID string) string { return "scrape.replies." + instanceID }

// Task is the body of a task message, gateway -> worker.
type Task struct {
	RequestID     string          `json:"request_id"`
	ScriptName    string          `json:"script_name"`
	ScriptVersion *string         `json:"script_version"`
	Parameters    json.RawMessage `json:"parameters"`
	// Timeout is the caller's timeout in whole seconds.
	Timeout   int       `json:"timeout"`
	ClientID  string    `json:"client_id"`
	CreatedAt time.Time `json:"created_at"`
}

// Status is the outcome of a task in a Reply.
type Status string

// Reply statuses.
const (
	StatusCompleted Status = "completed"
	StatusFailed    Status = "failed"
)

// Error codes a worker puts in a failed Reply's ErrorCode.
const (
	CodeUnknownVersion    = "UNKNOWN_VERSION"
	CodeInvalidParameters = "INVALID_PARAMETERS"
	CodeScriptError       = "SCRIPT_ERROR"
	CodeScriptTimeout     = "SCRIPT_TIMEOUT"
	CodeOutputTooLarge    = "OUTPUT_TOO_LARGE"
	CodeCancelled         = "CANCELLED"
	CodeWorkerError       = "WORKER_ERROR"
)

// Reply is the body of a reply message, worker -> gateway.
type Reply struct {
	RequestID     string          `json:"request_id"`
	Status        Status          `json:"status"`
	Data          json.RawMessage `json:"data"`
	Error         *string         `json:"error"`
	ErrorCode     *string         `json:"error_code"`
	ExecutionTime float64         `json:"execution_time"`
	CompletedAt   time.Time       `json:"completed_at"`
	WorkerID      string          `json:"worker_id"`
}

// Code returns the reply's error code: "" when completed, SCRIPT_ERROR for a
// failed reply of an older worker that sent none.
func (r *Reply) Code() string {
	if r.Status != StatusFailed {
		return ""
	}
	if r.ErrorCode == nil || *r.ErrorCode == "" {
		return CodeScriptError
	}
	return *r.ErrorCode
}

// Event types, which are also their routing keys on EventExchange.
const (
	EventAccepted  = "task.accepted"
	EventStarted   = "task.started"
	EventProgress  = "task.progress"
	EventCompleted = "task.completed"
	EventFailed    = "task.failed"
	EventExpired   = "task.expired"
	EventCancelled = "task.cancelled"
)

// Event is a task event on EventExchange.
type Event struct {
	Type       string          `json:"type"`
	RequestID  string          `json:"request_id"`
	ClientID   string          `json:"client_id"`
	ScriptName string          `json:"script_name"`
	WorkerID   *string         `json:"worker_id"`
	Data       json.RawMessage `json:"data"`
	Timestamp  time.Time       `json:"timestamp"`
}

// ScriptInfo describes one script a worker serves.
type ScriptInfo struct {
	Name             string          `json:"name"`
	Versions         []string        `json:"versions"`
	Description      string          `json:"description"`
	ParametersSchema json.RawMessage `json:"parameters_schema"`
}

// Heartbeat is a worker's periodic announcement on EventExchange (key HeartbeatKey).
type Heartbeat struct {
	WorkerID  string       `json:"worker_id"`
	Pool      string       `json:"pool"`
	InFlight  int          `json:"in_flight"`
	Capacity  int          `json:"capacity"`
	Scripts   []ScriptInfo `json:"scripts"`
	StartedAt time.Time    `json:"started_at"`
	Timestamp time.Time    `json:"timestamp"`
}

// CancelType is the type of a cancel control message.
const CancelType = "task.cancel"

// Cancel is a control message on ControlExchange asking workers to stop a task.
type Cancel struct {
	Type      string `json:"type"`
	RequestID string `json:"request_id"`
}

// Dead-lettering of a quorum task queue (an addition to the wire contract):
// a task returned to its queue more than the delivery limit times (its
// workers died running it) is dead-lettered to DeadLetterExchange with the
// pool as routing key, into DeadLetterQueueName(pool). The pool's workers
// consume that queue: they answer the task's caller with a failed reply
// (WORKER_ERROR) and park the task in PoisonQueueName(pool) for inspection.
const DeadLetterExchange = "scrape.dead"

// DeadLetterQueueName returns the queue dead-lettered tasks of a pool arrive in.
func DeadLetterQueueName(pool string) string { return TaskQueueName(pool) + ".dead" }

// PoisonQueueName returns the queue where the poison tasks of a pool rest
// after their callers got their failed reply.
func PoisonQueueName(pool string) string { return TaskQueueName(pool) + ".poison" }

package rpc

import (
	"errors"
	"fmt"
)

// Errors a Call returns; test for them with errors.Is.
var (
	// ErrUnknownScript means the broker returned the task: no queue is bound
	// for its script name.
	ErrUnknownScript = errors.New("unknown script")
	// ErrNoWorkers means a queue is bound for the script but no live worker
	// advertises it in its heartbeat.
	ErrNoWorkers = errors.New("no live worker serves the script")
	// ErrTimeout means no reply came before the call's deadline.
	ErrTimeout = errors.New("timed out waiting for reply")
	// ErrBrokerUnavailable means the link to the broker is down, or went down
	// before the broker confirmed the task.
	ErrBrokerUnavailable = errors.New("broker unavailable")
	// ErrNacked means the broker refused the task (a negative confirm).
	ErrNacked = errors.New("broker refused the task")
	// ErrCanceled means the caller's context was cancelled before the reply.
	ErrCanceled = errors.New("call canceled")
	// ErrClosed means the client or server was closed.
	ErrClosed = errors.New("closed")
)

// TaskError is a task that ran and failed: the worker's error code and
// message. Call returns it (with the reply) for a failed reply; a Handler
// returns it to choose the code of its failure.
type TaskError struct {
	// Code is one of the Code* constants.
	Code string
	// Message is the worker's human-readable error.
	Message string
}

// Error implements error.
func (e *TaskError) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

package rpc

import (
	"sync"
	"sync/atomic"
	"time"
)

// lostCancels keeps the task.cancel messages that may not have reached the
// worker that will get their task, to publish them again. Such a task runs
// for a caller that is gone. Two cases:
//   - the client's link was down (or the call's channel gone) when the caller
//     went away: the cancel could not be published. A confirmed task survives
//     the outage in its durable queue, and one that was running is
//     redelivered when its worker reconnects. Kept until the task's deadline.
//   - the cancel was published while a worker was reconnecting: its
//     exclusive control queue did not exist, so the fanout dropped the cancel
//     for it, and it may take the task from the queue once back. Kept for
//     three heartbeat intervals plus the longest reconnect delay.
//
// The client publishes the kept cancels again when its link comes back and
// on every worker heartbeat (a worker publishes one as soon as it is back);
// workers ignore cancels they already have. A task can still start on a
// worker that takes it before the heartbeat round trip: the cancel then stops
// it a moment later (found by the fault suite, e2e/chaos_test.go).
type lostCancels struct {
	n  atomic.Int32 // len(m), read without the lock on the heartbeat path
	mu sync.Mutex
	m  map[string]time.Time // request id -> until when to publish it again
}

// add keeps the cancel of request id until deadline (or for longer, if it
// was already kept).
func (l *lostCancels) add(id string, deadline time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = make(map[string]time.Time)
	}
	if deadline.After(l.m[id]) {
		l.m[id] = deadline
	}
	l.n.Store(int32(len(l.m)))
}

// live forgets the cancels whose tasks are past their deadline and returns
// the others' request ids.
func (l *lostCancels) live(now time.Time) []string {
	if l.n.Load() == 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	ids := make([]string, 0, len(l.m))
	for id, deadline := range l.m {
		if !now.Before(deadline) {
			delete(l.m, id)
			continue
		}
		ids = append(ids, id)
	}
	l.n.Store(int32(len(l.m)))
	return ids
}

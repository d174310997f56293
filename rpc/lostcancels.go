package rpc

import (
	"sync"
	"sync/atomic"
	"time"
)

// lostCancels keeps the task.cancel messages a Client could not publish
// because its link was down (or the call's channel was gone) when the caller
// went away. A confirmed task survives such an outage in its durable queue,
// and one that was running is redelivered when the worker reconnects: without
// its cancel it would run again for a caller that is gone. The client
// publishes the kept cancels again when its link comes back and on every
// worker heartbeat (a worker that reconnects later than the gateway binds
// its control queue only then), until each task's deadline.
type lostCancels struct {
	n  atomic.Int32 // len(m), read without the lock on the heartbeat path
	mu sync.Mutex
	m  map[string]time.Time // request id -> the task's deadline
}

// add keeps the cancel of request id until deadline.
func (l *lostCancels) add(id string, deadline time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = make(map[string]time.Time)
	}
	l.m[id] = deadline
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

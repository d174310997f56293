package rpc

import (
	"hash/maphash"
	"sync"
)

// outcome is what ended a call, delivered to its waiting caller.
type outcome uint8

const (
	outReply       outcome = iota + 1 // body holds the reply
	outReturned                       // the broker returned the task (no route)
	outUnavailable                    // the link went down and the reply cannot come
	outClosed                         // the client was closed
)

type result struct {
	kind outcome
	body []byte
}

// call is one Call waiting for its result. Each call receives at most one
// result: whoever removes it from the pending map sends it, and its channel
// has room for one.
type call struct {
	ch chan result
}

var callPool = sync.Pool{New: func() any { return &call{ch: make(chan result, 1)} }}

const pendingShards = 64

// pending maps correlation ids to waiting calls. It is sharded so that
// callers and the reply consumer rarely contend on one lock.
type pending struct {
	seed   maphash.Seed
	shards [pendingShards]struct {
		sync.Mutex
		m map[string]*call
		_ [40]byte // keep shards on separate cache lines
	}
}

func newPending() *pending {
	p := &pending{seed: maphash.MakeSeed()}
	for i := range p.shards {
		p.shards[i].m = make(map[string]*call)
	}
	return p
}

func (p *pending) shard(id string) int {
	return int(maphash.String(p.seed, id) % pendingShards)
}

// put registers c under id; false if id is already waiting.
func (p *pending) put(id string, c *call) bool {
	s := &p.shards[p.shard(id)]
	s.Lock()
	defer s.Unlock()
	if _, dup := s.m[id]; dup {
		return false
	}
	s.m[id] = c
	return true
}

// take removes and returns the call waiting under id, or nil.
func (p *pending) take(id string) *call {
	s := &p.shards[p.shard(id)]
	s.Lock()
	c := s.m[id]
	if c != nil {
		delete(s.m, id)
	}
	s.Unlock()
	return c
}

// deliver hands r to the call waiting under id; false if none waits (a late
// or duplicate reply).
func (p *pending) deliver(id string, r result) bool {
	c := p.take(id)
	if c == nil {
		return false
	}
	c.ch <- r
	return true
}

// failAll ends every waiting call with r.
func (p *pending) failAll(r result) int {
	n := 0
	for i := range p.shards {
		s := &p.shards[i]
		s.Lock()
		for id, c := range s.m {
			delete(s.m, id)
			c.ch <- r
			n++
		}
		s.Unlock()
	}
	return n
}

// len returns the number of waiting calls.
func (p *pending) len() int {
	n := 0
	for i := range p.shards {
		s := &p.shards[i]
		s.Lock()
		n += len(s.m)
		s.Unlock()
	}
	return n
}

package caddymodule

import (
	"sync"
	"time"
)

// callStats counts the gateway's calls by script and outcome. It is shared
// by every handler of one broker link and kept across config reloads (it
// lives in the pooled link). The status, metrics and dashboard handlers read
// it. (Stub: the ws/status engineer extends it with metrics and time series.)
type callStats struct {
	mu       sync.Mutex
	byScript map[string]map[string]uint64 // script -> outcome -> count
}

// Record counts one call of script that ended with outcome (a catalogue code
// or "completed"/"failed") after d.
func (s *callStats) Record(script, outcome string, d time.Duration) {
	_ = d
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byScript == nil {
		s.byScript = make(map[string]map[string]uint64)
	}
	m := s.byScript[script]
	if m == nil {
		m = make(map[string]uint64)
		s.byScript[script] = m
	}
	m[outcome]++
}

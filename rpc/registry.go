package rpc

import (
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// workerForget is how long a silent worker stays listed by Workers.
const workerForgetIntervals = 60

// registry remembers the workers heard from by heartbeat, and per script
// until when some worker advertising it counts as live. Calls read it on
// every Call, so the per-script lookup is lock-free.
type registry struct {
	interval time.Duration

	// since is when the current session started listening to heartbeats
	// (unix nanos; 0 while down). NO_WORKERS is answered only three
	// intervals after it.
	since atomic.Int64

	// live maps a script name to *atomic.Int64: unix nanos until which a
	// worker advertising it is live.
	live sync.Map

	mu      sync.Mutex
	workers map[string]*WorkerInfo
}

func newRegistry(interval time.Duration) *registry {
	return &registry{interval: interval, workers: make(map[string]*WorkerInfo)}
}

// listening records that heartbeats are being received from now on.
func (r *registry) listening(now time.Time) { r.since.Store(now.UnixNano()) }

// stopped records that heartbeats are no longer received.
func (r *registry) stopped() { r.since.Store(0) }

// heard records a heartbeat received at now.
func (r *registry) heard(hb Heartbeat, now time.Time) {
	until := now.Add(3 * r.interval).UnixNano()
	for _, s := range hb.Scripts {
		v, _ := r.live.LoadOrStore(s.Name, new(atomic.Int64))
		a := v.(*atomic.Int64)
		for {
			old := a.Load()
			if old >= until || a.CompareAndSwap(old, until) {
				break
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.workers[hb.WorkerID] = &WorkerInfo{Heartbeat: hb, LastSeen: now}
	forget := now.Add(-workerForgetIntervals * r.interval)
	for id, w := range r.workers {
		if w.LastSeen.Before(forget) {
			delete(r.workers, id)
		}
	}
}

// noWorkers reports whether a call for script must fail with NO_WORKERS:
// the script was heard of, no live worker advertises it, and heartbeats have
// been received for at least three intervals.
func (r *registry) noWorkers(script string, now time.Time) bool {
	v, ok := r.live.Load(script)
	if !ok {
		return false
	}
	n := now.UnixNano()
	if n <= v.(*atomic.Int64).Load() {
		return false
	}
	since := r.since.Load()
	return since != 0 && n-since >= int64(3*r.interval)
}

// list returns the known workers, sorted by id, with their liveness at now.
func (r *registry) list(now time.Time) []WorkerInfo {
	r.mu.Lock()
	out := make([]WorkerInfo, 0, len(r.workers))
	for _, w := range r.workers {
		wi := *w
		wi.Live = now.Sub(w.LastSeen) < 3*r.interval
		out = append(out, wi)
	}
	r.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].WorkerID < out[j].WorkerID })
	return out
}

// scripts returns the union of the scripts of live workers, versions merged
// and sorted; the description and schema come from the newest heartbeat.
func (r *registry) scripts(now time.Time) []ScriptInfo {
	ws := r.list(now)
	sort.Slice(ws, func(i, j int) bool { return ws[i].LastSeen.After(ws[j].LastSeen) })
	byName := map[string]*ScriptInfo{}
	var names []string
	for _, w := range ws {
		if !w.Live {
			continue
		}
		for _, s := range w.Scripts {
			si := byName[s.Name]
			if si == nil {
				si = &ScriptInfo{Name: s.Name, Description: s.Description, ParametersSchema: s.ParametersSchema}
				byName[s.Name] = si
				names = append(names, s.Name)
			}
			for _, v := range s.Versions {
				if !slices.Contains(si.Versions, v) {
					si.Versions = append(si.Versions, v)
				}
			}
		}
	}
	sort.Strings(names)
	out := make([]ScriptInfo, 0, len(names))
	for _, n := range names {
		si := byName[n]
		sort.Strings(si.Versions)
		out = append(out, *si)
	}
	return out
}

package caddymodule

import (
	"os"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/mem"
	"github.com/shirou/gopsutil/v4/process"

	"github.com/caddyserver/caddy/v2"
)

// samplers holds the one process sampler of the gateway, shared by every
// status handler of every config and kept across reloads; the last handler
// cleaned up stops it.
var samplers = caddy.NewUsagePool()

// samplerKey is the key of the process sampler in samplers.
const samplerKey = "process"

// sampleInterval is how often the sampler reads the process's CPU and memory.
const sampleInterval = 2 * time.Second

// ProcessStatus is the gateway process's resource use, sampled in the
// background every two seconds (never inside a request).
type ProcessStatus struct {
	// CPUPercent is the CPU the process used over the last sample interval,
	// in percent of one core (like top: 200 means two cores busy).
	CPUPercent float64 `json:"cpu_percent"`
	// NumCPU is the number of logical CPUs the process may use.
	NumCPU int `json:"num_cpu"`
	// RSSBytes is the process's resident memory.
	RSSBytes uint64 `json:"memory_rss_bytes"`
	// MemoryPercent is RSSBytes in percent of the machine's memory.
	MemoryPercent float64 `json:"memory_percent"`
	// HeapBytes is the memory of live and not yet collected Go heap objects.
	HeapBytes uint64 `json:"go_heap_bytes"`
	// Goroutines is the number of goroutines.
	Goroutines uint64 `json:"goroutines"`
	// OpenFiles is the number of open file descriptors (sockets included).
	OpenFiles int32 `json:"open_files"`
	// SystemCPUPercent and SystemMemoryPercent are the whole machine's CPU
	// (all cores, 0-100) and memory use.
	SystemCPUPercent    float64 `json:"system_cpu_percent"`
	SystemMemoryPercent float64 `json:"system_memory_percent"`
	// SampledAt is when these numbers were read; null before the first sample.
	SampledAt *time.Time `json:"sampled_at"`
}

// procSampler samples the gateway process's resource use in the background.
// Its goroutine starts on first use (so `caddy validate` starts nothing) and
// stops when the last user releases it from samplers.
type procSampler struct {
	last      atomic.Pointer[ProcessStatus]
	startOnce sync.Once
	stop      chan struct{}
	done      chan struct{}
	interval  time.Duration

	prevBusy, prevTotal float64 // the machine's CPU times at the last sample (run's goroutine only)
}

// loadSampler returns the shared sampler; release it with releaseSampler.
func loadSampler() (*procSampler, error) {
	v, _, err := samplers.LoadOrNew(samplerKey, func() (caddy.Destructor, error) {
		return newProcSampler(sampleInterval), nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*procSampler), nil
}

// releaseSampler drops one reference to the shared sampler.
func releaseSampler() error {
	_, err := samplers.Delete(samplerKey)
	return err
}

// newProcSampler returns a sampler that samples every interval once started.
func newProcSampler(interval time.Duration) *procSampler {
	return &procSampler{
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		interval: interval,
	}
}

// get returns the latest sample (zero, with a nil SampledAt, before the
// first), starting the sampler if needed. It never blocks.
func (p *procSampler) get() ProcessStatus {
	p.startOnce.Do(func() { go p.run() })
	if s := p.last.Load(); s != nil {
		return *s
	}
	return ProcessStatus{NumCPU: runtime.NumCPU()}
}

// run samples until Destruct.
func (p *procSampler) run() {
	defer close(p.done)
	proc, err := process.NewProcess(int32(os.Getpid()))
	if err != nil {
		proc = nil // only the Go runtime's numbers then
	}
	p.sample(proc)
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			p.sample(proc)
		case <-p.stop:
			return
		}
	}
}

// runtimeSamples are the Go runtime metrics the sampler reads.
var runtimeSamples = []string{
	"/memory/classes/heap/objects:bytes",
	"/sched/goroutines:goroutines",
}

// sample reads the numbers once. The first CPU figure of a process is zero:
// gopsutil measures CPU between two calls.
func (p *procSampler) sample(proc *process.Process) {
	s := ProcessStatus{NumCPU: runtime.NumCPU()}
	if proc != nil {
		if v, err := proc.Percent(0); err == nil {
			s.CPUPercent = round2(v)
		}
		if mi, err := proc.MemoryInfo(); err == nil {
			s.RSSBytes = mi.RSS
		}
		if v, err := proc.NumFDs(); err == nil {
			s.OpenFiles = v
		}
	}
	if vm, err := mem.VirtualMemory(); err == nil {
		s.SystemMemoryPercent = round2(vm.UsedPercent)
		if vm.Total > 0 {
			s.MemoryPercent = round2(100 * float64(s.RSSBytes) / float64(vm.Total))
		}
	}
	s.SystemCPUPercent = p.systemCPU()

	ms := make([]metrics.Sample, len(runtimeSamples))
	for i, name := range runtimeSamples {
		ms[i].Name = name
	}
	metrics.Read(ms)
	if ms[0].Value.Kind() == metrics.KindUint64 {
		s.HeapBytes = ms[0].Value.Uint64()
	}
	if ms[1].Value.Kind() == metrics.KindUint64 {
		s.Goroutines = ms[1].Value.Uint64()
	}
	t := time.Now().UTC()
	s.SampledAt = &t
	p.last.Store(&s)
}

// Destruct stops the sampler's goroutine and waits for it.
func (p *procSampler) Destruct() error {
	close(p.stop)
	started := true
	p.startOnce.Do(func() { started = false })
	if started {
		<-p.done
	}
	return nil
}

// systemCPU returns the machine's CPU use since the last call, in percent of
// all cores (0 on the first call).
func (p *procSampler) systemCPU() float64 {
	ts, err := cpu.Times(false)
	if err != nil || len(ts) == 0 {
		return 0
	}
	t := ts[0]
	// guest time is already counted in user time on Linux
	total := t.User + t.System + t.Idle + t.Nice + t.Iowait + t.Irq + t.Softirq + t.Steal
	busy := total - t.Idle - t.Iowait
	dBusy, dTotal := busy-p.prevBusy, total-p.prevTotal
	first := p.prevTotal == 0
	p.prevBusy, p.prevTotal = busy, total
	if first || dTotal <= 0 {
		return 0
	}
	return round2(100 * min(max(dBusy/dTotal, 0), 1))
}

// round2 rounds v to two decimals.
func round2(v float64) float64 {
	return float64(int64(v*100+0.5)) / 100
}

// Interface guards
var _ caddy.Destructor = (*procSampler)(nil)

package rpc

// Benchmarks of the RPC round trip against the real broker:
//
//	go test -run '^$' -bench . -benchtime 20000x ./rpc/
//
// BenchmarkEcho runs Call next to a minimal hand-written amqp091-go RPC
// loop (publisher confirms, mandatory, an exclusive auto-ack reply queue, a
// sharded map of waiting callers), both against the same minimal echo
// worker, at parallelism 1, 16, 64 and 256, and reports req/s, p50, p99 and
// the CPU time of the benchmark process per call (the worker runs in a
// process of its own). BenchmarkEchoServer runs Call against the package's
// own Server.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"
)

var benchParallelism = []int{1, 16, 64, 256}

func BenchmarkEcho(b *testing.B) {
	vh := newVHost(b)
	startWorkerProcess(b, envRawWorker, vh.url)
	c := startClient(b, ClientConfig{URL: vh.url, Logger: zap.NewNop()})
	raw := newRawClient(b, vh.url, 4)
	params := json.RawMessage(`{"url":"https://example.com"}`)
	for _, p := range benchParallelism {
		b.Run("Call/p="+strconv.Itoa(p), func(b *testing.B) {
			runCalls(b, p, func(ctx context.Context) error {
				rep, err := c.Call(ctx, Task{ScriptName: "echo", Parameters: params, ClientID: "bench"})
				if err == nil && rep.Status != StatusCompleted {
					err = fmt.Errorf("status %s", rep.Status)
				}
				return err
			})
		})
		b.Run("Raw/p="+strconv.Itoa(p), func(b *testing.B) {
			runCalls(b, p, func(ctx context.Context) error { return raw.call(ctx, "echo", params) })
		})
	}
}

func BenchmarkEchoServer(b *testing.B) {
	vh := newVHost(b)
	startWorkerProcess(b, envServerWorker, vh.url)
	c := startClient(b, ClientConfig{URL: vh.url, Logger: zap.NewNop()})
	params := json.RawMessage(`{"url":"https://example.com"}`)
	for _, p := range benchParallelism {
		b.Run("Call/p="+strconv.Itoa(p), func(b *testing.B) {
			runCalls(b, p, func(ctx context.Context) error {
				_, err := c.Call(ctx, Task{ScriptName: "echo", Parameters: params, ClientID: "bench"})
				return err
			})
		})
	}
}

// runCalls runs b.N calls on p goroutines and reports req/s, p50 and p99.
func runCalls(b *testing.B, p int, f func(ctx context.Context) error) {
	var next atomic.Int64
	lat := make([][]time.Duration, p)
	var failed atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	for g := range p {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := make([]time.Duration, 0, b.N/p+1)
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				err := f(ctx)
				cancel()
				if err != nil {
					if failed.Add(1) == 1 {
						b.Errorf("call: %v", err)
					}
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			lat[g] = mine
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "req/s")
	// CPU of this process (client and in-process worker; not the broker)
	// per call: less sensitive than req/s to other load on the machine.
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)*50/100].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(all[min(len(all)*99/100, len(all)-1)].Microseconds())/1000, "p99-ms")
	}
}

// cpuTime returns the user+system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rawClient is the minimal hand-written RPC loop Call is measured against:
// confirms on, mandatory, an exclusive server-named auto-ack reply queue,
// the task published exactly as the contract says.
type rawClient struct {
	conn    *amqp.Connection
	pubs    []*amqp.Channel
	replyTo string
	next    atomic.Uint32
	seed    maphash.Seed
	shards  [64]struct {
		sync.Mutex
		m map[string]chan []byte
	}
}

func newRawClient(tb testing.TB, url string, channels int) *rawClient {
	conn, err := amqp.Dial(url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	r := &rawClient{conn: conn, seed: maphash.MakeSeed()}
	for i := range r.shards {
		r.shards[i].m = map[string]chan []byte{}
	}
	rch, err := conn.Channel()
	if err != nil {
		tb.Fatal(err)
	}
	q, err := rch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		tb.Fatal(err)
	}
	r.replyTo = q.Name
	replies, err := rch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		tb.Fatal(err)
	}
	go func() {
		for d := range replies {
			s := &r.shards[maphash.String(r.seed, d.CorrelationId)%64]
			s.Lock()
			ch := s.m[d.CorrelationId]
			delete(s.m, d.CorrelationId)
			s.Unlock()
			if ch != nil {
				ch <- d.Body
			}
		}
	}()
	for range channels {
		ch, err := conn.Channel()
		if err != nil {
			tb.Fatal(err)
		}
		if err := ch.Confirm(false); err != nil {
			tb.Fatal(err)
		}
		r.pubs = append(r.pubs, ch)
	}
	return r
}

func (r *rawClient) call(ctx context.Context, script string, params json.RawMessage) error {
	id := newRequestID()
	now := time.Now()
	deadline, _ := ctx.Deadline()
	body, err := json.Marshal(&Task{RequestID: id, ScriptName: script, Parameters: params, Timeout: 30, ClientID: "bench", CreatedAt: now})
	if err != nil {
		return err
	}
	ch := make(chan []byte, 1)
	s := &r.shards[maphash.String(r.seed, id)%64]
	s.Lock()
	s.m[id] = ch
	s.Unlock()
	defer func() {
		s.Lock()
		delete(s.m, id)
		s.Unlock()
	}()
	pc := r.pubs[int(r.next.Add(1))%len(r.pubs)]
	dc, err := pc.PublishWithDeferredConfirm(TaskExchange, script, true, false, amqp.Publishing{
		ContentType: "application/json", CorrelationId: id, MessageId: id, ReplyTo: r.replyTo,
		Expiration: strconv.FormatInt(time.Until(deadline).Milliseconds(), 10), Timestamp: now,
		DeliveryMode: amqp.Persistent,
		Headers:      amqp.Table{HeaderClientID: "bench", HeaderDeadlineMS: deadline.UnixMilli()},
		Body:         body,
	})
	if err != nil {
		return err
	}
	if ok, err := dc.WaitContext(ctx); err != nil || !ok {
		return fmt.Errorf("not confirmed: %v", err)
	}
	select {
	case b := <-ch:
		var rep struct {
			RequestID string `json:"request_id"`
			Status    string `json:"status"`
		}
		if err := json.Unmarshal(b, &rep); err != nil || rep.RequestID != id || rep.Status != "completed" {
			return fmt.Errorf("bad reply %s", b)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Environment variables that make the test binary a benchmark worker
// process (see TestMain), so that the benchmark process measures the client
// alone.
const (
	envRawWorker    = "RPC_BENCH_RAW_WORKER"
	envServerWorker = "RPC_BENCH_SERVER_WORKER"
)

// startWorkerProcess runs this test binary as a worker process (env names
// its kind, the value is the AMQP URL) until the benchmark ends.
func startWorkerProcess(tb testing.TB, env, url string) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env+"="+url)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = stdin.Close() // the worker exits when its stdin closes
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		tb.Fatalf("worker process: %q %v", line, err)
	}
}

// runWorkerProcess is the body of a worker process: it serves until its
// stdin closes.
func runWorkerProcess() int {
	var stop func()
	var err error
	if url := os.Getenv(envRawWorker); url != "" {
		stop, err = runRawEchoWorker(url)
	} else {
		stop, err = runServerWorker(os.Getenv(envServerWorker))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		return 1
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	stop()
	return 0
}

func runServerWorker(url string) (func(), error) {
	s, err := NewServer(ServerConfig{URL: url, Concurrency: 256}, echoHandler)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	select {
	case <-s.Ready():
	case <-time.After(10 * time.Second):
		cancel()
		return nil, errors.New("server not ready")
	}
	return func() { cancel(); <-done }, nil
}

// runRawEchoWorker runs a minimal echo worker (4 consumer channels,
// prefetch 64 each, reply then ack).
func runRawEchoWorker(url string) (func(), error) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	if err := declareExchanges(ch); err != nil {
		return nil, err
	}
	q := TaskQueueName(DefaultPool)
	if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
		return nil, err
	}
	if err := ch.QueueBind(q, "echo", TaskExchange, false, nil); err != nil {
		return nil, err
	}
	for i := range 4 {
		ch, err := conn.Channel()
		if err != nil {
			return nil, err
		}
		if err := ch.Qos(64, 0, false); err != nil {
			return nil, err
		}
		ds, err := ch.Consume(q, "raw-echo-"+strconv.Itoa(i), false, false, false, false, nil)
		if err != nil {
			return nil, err
		}
		go func() {
			for d := range ds {
				var t Task
				_ = json.Unmarshal(d.Body, &t)
				now := time.Now()
				body, _ := json.Marshal(&Reply{RequestID: t.RequestID, Status: StatusCompleted, Data: t.Parameters, CompletedAt: now, WorkerID: "raw"})
				_ = ch.Publish("", d.ReplyTo, false, false, amqp.Publishing{ContentType: "application/json", CorrelationId: d.CorrelationId, Body: body})
				_ = d.Ack(false)
			}
		}()
	}
	return func() { _ = conn.Close() }, nil
}

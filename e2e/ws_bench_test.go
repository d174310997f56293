package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// BenchmarkWSFanout measures the event fan-out of ws_status through a real
// gateway process and the real broker: it opens WS_BENCH_SOCKETS sockets
// (default 10,000), then
//
//   - own: publishes one task event per socket on scrape.events, each for
//     the socket's own client (10,000 clients, one event each);
//   - broadcast: reopens the sockets as admins and publishes one event,
//     which every socket receives;
//
// and reports the delivery latency (publish on the broker to receipt by the
// client, p50/p99/max) and the gateway's resident memory per open socket.
// It runs its scenario once whatever b.N is:
//
//	go test -run '^$' -bench BenchmarkWSFanout -benchtime 1x -timeout 20m ./e2e/
//
// WS_BENCH_PROFILE=<file> also writes a 5 s CPU profile of the gateway
// taken during back-to-back broadcasts.
func BenchmarkWSFanout(b *testing.B) {
	n := 10_000
	if v, err := strconv.Atoi(os.Getenv("WS_BENCH_SOCKETS")); err == nil && v > 0 {
		n = v
	}
	raiseOpenFiles(b, uint64(n)+1024)
	g, _, amqpURL := startStatusGateway(b, map[string]string{"WS_STATUS_INTERVAL": "off", "WS_BUFFER": "64"})
	pub := newEventPublisher(b, amqpURL)
	tokens := make([]string, n)
	admins := make([]string, n)
	for i := range tokens {
		tokens[i] = MintToken(b, GatewaySecret, fmt.Sprintf("bench-%05d", i), 2*time.Hour, nil)
		admins[i] = MintToken(b, GatewaySecret, fmt.Sprintf("admin-%05d", i), 2*time.Hour, map[string]any{"role": "admin"})
	}
	time.Sleep(time.Second)
	rssBase := benchRSS(b, g.Pid())
	b.ResetTimer()

	for range b.N {
		// own: one event per client
		socks, took := benchOpen(b, g, tokens)
		time.Sleep(2 * time.Second) // let the gateway settle
		rss := benchRSS(b, g.Pid())
		perSocket := float64(rss-rssBase) / float64(n)
		b.Logf("opened %d sockets in %v; gateway RSS %.1f MiB -> %.1f MiB: %.1f KiB per socket",
			n, took.Round(time.Millisecond), benchMiB(rssBase), benchMiB(rss), perSocket/1024)

		cpu0 := benchCPU(b, g.Pid())
		start := time.Now()
		for i := range n {
			pub.publish(b, benchEvent(fmt.Sprintf("bench-%05d", i), fmt.Sprint("own-", i)))
		}
		own := benchCollect(b, socks, "own")
		wall := time.Since(start)
		cpu := benchCPU(b, g.Pid()) - cpu0
		b.Logf("own: %d events to %d sockets in %v: %s; gateway CPU %.1f µs per event",
			n, len(own), wall.Round(time.Millisecond), benchLatencyLine(own), float64(cpu.Microseconds())/float64(n))
		benchClose(socks)

		// broadcast: one event, every socket
		time.Sleep(time.Second)
		socks, _ = benchOpen(b, g, admins)
		cpu0 = benchCPU(b, g.Pid())
		start = time.Now()
		pub.publish(b, benchEvent("someone", "broadcast"))
		bc := benchCollect(b, socks, "broadcast")
		wall = time.Since(start)
		cpu = benchCPU(b, g.Pid()) - cpu0
		b.Logf("broadcast: 1 event to %d sockets in %v: %s; gateway CPU %.1f µs per delivery",
			len(bc), wall.Round(time.Millisecond), benchLatencyLine(bc), float64(cpu.Microseconds())/float64(n))
		if out := os.Getenv("WS_BENCH_PROFILE"); out != "" {
			benchProfile(b, g, pub, socks, out)
		}
		benchClose(socks)

		b.ReportMetric(perSocket/1024, "KiB/socket")
		b.ReportMetric(benchMS(benchPercentile(own, 0.50)), "own-p50-ms")
		b.ReportMetric(benchMS(benchPercentile(own, 0.99)), "own-p99-ms")
		b.ReportMetric(benchMS(benchPercentile(bc, 0.50)), "bcast-p50-ms")
		b.ReportMetric(benchMS(benchPercentile(bc, 0.99)), "bcast-p99-ms")
	}
}

// benchProfile takes a 5 s CPU profile of the gateway (Caddy's admin
// /debug/pprof) while broadcasts go out back to back, into the file out.
func benchProfile(b *testing.B, g *Gateway, pub *eventPublisher, socks []*benchSock, out string) {
	b.Helper()
	done := make(chan error, 1)
	go func() {
		resp, err := http.Get(g.AdminURL + "/debug/pprof/profile?seconds=5")
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(out)
		if err != nil {
			done <- err
			return
		}
		_, err = io.Copy(f, resp.Body)
		f.Close()
		done <- err
	}()
	for i := 0; ; i++ {
		select {
		case err := <-done:
			if err != nil {
				b.Fatalf("profiling the gateway: %v", err)
			}
			b.Logf("gateway CPU profile of %d broadcasts: %s", i, out)
			return
		default:
		}
		pub.publish(b, benchEvent("someone", fmt.Sprint("profile-", i)))
		for _, s := range socks {
			if _, ok := <-s.lat; !ok {
				b.Fatal("a socket closed while profiling")
			}
		}
	}
}

// benchSock is one socket of the benchmark, waiting for one event.
type benchSock struct {
	c   *websocket.Conn
	lat chan time.Duration
}

// benchEvent is a task event whose data carries its publish time.
func benchEvent(client, rid string) wsEvent {
	return wsEvent{Type: "task.progress", RequestID: rid, ClientID: client,
		Data: json.RawMessage(fmt.Sprintf(`{"sent_unix_nano":%d}`, time.Now().UnixNano()))}
}

// benchOpen opens one socket per token (64 handshakes at a time), reads each
// one's first two messages, and starts waiting for one event on each.
func benchOpen(b *testing.B, g *Gateway, tokens []string) ([]*benchSock, time.Duration) {
	b.Helper()
	socks := make([]*benchSock, len(tokens))
	start := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Int64
	var firstErr atomic.Value
	sem := make(chan struct{}, 64)
	for i, tok := range tokens {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c, _, err := wsDial(ctx, g, tok, wsAuthHeader)
			if err == nil {
				for range 2 { // snapshot, subscribed
					if _, _, err = c.Read(ctx); err != nil {
						break
					}
				}
			}
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			s := &benchSock{c: c, lat: make(chan time.Duration, 1)}
			socks[i] = s
			go func() {
				for {
					_, msg, err := c.Read(context.Background())
					if err != nil {
						close(s.lat)
						return
					}
					var m wsMsg
					var d struct {
						Data struct {
							Sent int64 `json:"sent_unix_nano"`
						} `json:"data"`
					}
					if json.Unmarshal(msg, &m) == nil && m.Type == "task.progress" && json.Unmarshal(m.Data, &d) == nil {
						s.lat <- time.Since(time.Unix(0, d.Data.Sent))
					}
				}
			}()
		}()
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d sockets failed to open; first: %v", n, len(tokens), firstErr.Load())
	}
	return socks, time.Since(start)
}

// benchCollect waits for every socket's event and returns the latencies.
func benchCollect(b *testing.B, socks []*benchSock, what string) []time.Duration {
	b.Helper()
	lats := make([]time.Duration, 0, len(socks))
	timeout := time.After(2 * time.Minute)
	for i, s := range socks {
		select {
		case d, ok := <-s.lat:
			if !ok {
				b.Fatalf("%s: socket %d closed before its event", what, i)
			}
			lats = append(lats, d)
		case <-timeout:
			b.Fatalf("%s: %d of %d events arrived within 2 minutes", what, len(lats), len(socks))
		}
	}
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	return lats
}

// benchClose closes every socket.
func benchClose(socks []*benchSock) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	for _, s := range socks {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s.c.Close(websocket.StatusNormalClosure, "")
		}()
	}
	wg.Wait()
}

// benchPercentile returns the q-quantile of sorted durations.
func benchPercentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q * float64(len(sorted)-1))
	return sorted[i]
}

func benchLatencyLine(sorted []time.Duration) string {
	return fmt.Sprintf("latency p50 %.2f ms, p99 %.2f ms, max %.2f ms",
		benchMS(benchPercentile(sorted, 0.5)), benchMS(benchPercentile(sorted, 0.99)), benchMS(sorted[len(sorted)-1]))
}

func benchMS(d time.Duration) float64 { return float64(d) / 1e6 }

func benchMiB(bytes int64) float64 { return float64(bytes) / (1 << 20) }

// benchRSS returns the resident memory of a process, from /proc.
func benchRSS(t testing.TB, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("reading /proc/%d/status: %v", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// benchCPU returns the CPU time (user + system) a process used so far.
func benchCPU(t testing.TB, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatalf("reading /proc/%d/stat: %v", pid, err)
	}
	// the fields after the command name (which may hold spaces)
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

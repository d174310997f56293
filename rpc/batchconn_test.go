package rpc

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestBatchConnKeepsOrder: what concurrent writers queue reaches the peer
// whole and, per writer, in order.
func TestBatchConnKeepsOrder(t *testing.T) {
	client, server := net.Pipe()
	b := newBatchConn(client)
	defer b.Close()

	const writers, each = 8, 500
	want := 0
	for w := range writers {
		for i := range each {
			want += len("w" + strconv.Itoa(w) + ":" + strconv.Itoa(i) + "\n")
		}
	}
	got := make(chan []byte, 1)
	go func() {
		data := make([]byte, want)
		n, _ := io.ReadFull(server, data)
		got <- data[:n]
	}()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if _, err := b.Write([]byte("w" + strconv.Itoa(w) + ":" + strconv.Itoa(i) + "\n")); err != nil {
					t.Errorf("write: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()

	data := <-got
	next := make([]int, writers)
	lines := bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	if len(lines) != writers*each {
		t.Fatalf("peer read %d lines, want %d", len(lines), writers*each)
	}
	for _, l := range lines {
		wStr, iStr, _ := bytes.Cut(bytes.TrimPrefix(l, []byte("w")), []byte(":"))
		w, _ := strconv.Atoi(string(wStr))
		i, _ := strconv.Atoi(string(iStr))
		if i != next[w] {
			t.Fatalf("writer %d: got line %d, want %d", w, i, next[w])
		}
		next[w]++
	}
}

// TestBatchConnCloseFlushes: what was queued just before Close reaches the
// peer (amqp091 queues the connection.close-ok it owes a broker that closed
// the connection, then closes the socket at once).
func TestBatchConnCloseFlushes(t *testing.T) {
	for range 50 {
		client, server := net.Pipe()
		got := make(chan []byte, 1)
		go func() {
			data, _ := io.ReadAll(server)
			got <- data
		}()
		b := newBatchConn(client)
		if _, err := b.Write([]byte("close-ok")); err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if data := <-got; string(data) != "close-ok" {
			t.Fatalf("the peer read %q, want %q", data, "close-ok")
		}
	}
}

// TestBatchConnFailedWrite: once the socket refuses a write, the next Write
// returns that error.
func TestBatchConnFailedWrite(t *testing.T) {
	client, server := net.Pipe()
	b := newBatchConn(client)
	defer b.Close()
	_ = server.Close()

	var err error
	for range 100 {
		if _, err = b.Write([]byte("x")); err != nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("Write after the peer closed: %v, want %v", err, io.ErrClosedPipe)
	}
	// the reader learns the write's error, not only that the socket closed
	if _, err := b.Read(make([]byte, 1)); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("Read after the failed write: %v, want %v", err, io.ErrClosedPipe)
	}
}

// TestBatchConnCloseUnblocks: Close returns even while the writer is stuck
// in a write the peer never reads, and a Write waiting for room returns too.
func TestBatchConnCloseUnblocks(t *testing.T) {
	client, _ := net.Pipe() // nobody reads: every write blocks
	b := newBatchConn(client)

	big := make([]byte, maxPendingWrite)
	if _, err := b.Write(big); err != nil { // taken by the stuck writer
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the writer to take the first write", func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.pending) == 0 })
	if _, err := b.Write(big); err != nil { // fills the queue
		t.Fatal(err)
	}
	blocked := make(chan error, 1)
	go func() {
		_, err := b.Write([]byte("x")) // must wait for room
		blocked <- err
	}()
	select {
	case err := <-blocked:
		t.Fatalf("Write over the limit returned at once: %v", err)
	case <-time.After(50 * time.Millisecond):
	}

	closed := make(chan error, 1)
	go func() { closed <- b.Close() }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return while the writer was stuck")
	}
	select {
	case err := <-blocked:
		if err == nil {
			t.Fatal("the waiting Write succeeded after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting Write did not return after Close")
	}
	if _, err := b.Write([]byte("x")); err == nil {
		t.Fatal("Write after Close succeeded")
	}
}

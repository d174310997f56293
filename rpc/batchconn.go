package rpc

import (
	"net"
	"sync"
)

// maxPendingWrite is how many bytes batchConn holds for the socket before a
// Write waits for the socket to catch up.
const maxPendingWrite = 1 << 20

// batchConn is the broker connection's socket with its writes batched.
//
// amqp091 flushes its buffer, one write system call, after every message it
// sends, under the connection's lock. With many calls in flight that is one
// system call per publish and per confirm on each side of the socket, and
// the broker, which is the bottleneck on a small machine, reads them one by
// one. batchConn's Write only appends to a buffer and wakes its writer
// goroutine, which writes whatever has gathered while its previous write was
// in the kernel: under load many frames go in one write, at rest each still
// goes at once (no timer, no added delay beyond the wake-up).
//
// A failed write is returned by the next Write and closes the socket, so
// amqp091's reader sees the connection die as it would have. Publisher
// confirms keep their meaning: the broker confirms what it received.
type batchConn struct {
	net.Conn

	mu      sync.Mutex
	room    sync.Cond // signalled when the pending buffer drained
	pending []byte
	spare   []byte
	err     error
	closed  bool

	kick chan struct{} // buffered(1): pending has data
	stop chan struct{} // closed by Close
	done chan struct{} // closed when the writer returned
}

// newBatchConn wraps c and starts its writer; Close stops it.
func newBatchConn(c net.Conn) *batchConn {
	b := &batchConn{
		Conn: c,
		kick: make(chan struct{}, 1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	b.room.L = &b.mu
	go b.writer()
	return b
}

// Write queues p for the writer. It fails with the error of an earlier
// write, and waits while more than maxPendingWrite bytes are queued.
func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	for b.err == nil && !b.closed && len(b.pending) >= maxPendingWrite {
		b.room.Wait()
	}
	if b.err != nil {
		err := b.err
		b.mu.Unlock()
		return 0, err
	}
	if b.closed {
		b.mu.Unlock()
		return 0, net.ErrClosed
	}
	b.pending = append(b.pending, p...)
	b.mu.Unlock()
	select {
	case b.kick <- struct{}{}:
	default: // the writer is already due to look
	}
	return len(p), nil
}

// writer writes what Write queued until Close or a failed write.
func (b *batchConn) writer() {
	defer close(b.done)
	for {
		select {
		case <-b.kick:
		case <-b.stop:
			return
		}
		if !b.drain() {
			return
		}
	}
}

// drain writes the pending bytes until there are none; it reports false
// once a write failed (the socket is then closed).
func (b *batchConn) drain() bool {
	for {
		b.mu.Lock()
		if len(b.pending) == 0 || b.err != nil {
			ok := b.err == nil
			b.mu.Unlock()
			return ok
		}
		out := b.pending
		b.pending = b.spare[:0]
		b.mu.Unlock()

		_, err := b.Conn.Write(out)

		b.mu.Lock()
		b.spare = out[:0]
		if err != nil && b.err == nil {
			b.err = err
		}
		b.room.Broadcast()
		b.mu.Unlock()
		if err != nil {
			_ = b.Conn.Close() // amqp091's reader sees the connection die
			return false
		}
	}
}

// Close stops the writer and closes the socket, which also ends a write
// the writer is blocked in. Nothing of value is lost: amqp091 closes the
// socket only after the broker answered its connection.close, that is after
// the broker read every byte queued before it, or when the connection is
// already lost.
func (b *batchConn) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.room.Broadcast()
	b.mu.Unlock()
	close(b.stop)
	err := b.Conn.Close()
	<-b.done
	return err
}

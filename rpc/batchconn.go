package rpc

import (
	"errors"
	"net"
	"sync"
	"time"
)

const (
	// maxPendingWrite is how many bytes batchConn holds for the socket
	// before a Write waits for the socket to catch up.
	maxPendingWrite = 1 << 20
	// closeFlushTimeout bounds how long Close spends writing what is still
	// queued (a connection.close-ok, a TLS close_notify).
	closeFlushTimeout = time.Second
)

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
			if !b.drain() {
				return
			}
		case <-b.stop:
			b.drain() // what was queued before Close, within its deadline
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

// Read reads from the socket; when it fails after a write failed, it
// returns the write's error, the cause amqp091 should report (the writer
// closed the socket because of it).
func (b *batchConn) Read(p []byte) (int, error) {
	n, err := b.Conn.Read(p)
	if err != nil {
		b.mu.Lock()
		werr := b.err
		b.mu.Unlock()
		if werr != nil {
			return n, werr
		}
	}
	return n, err
}

// Close writes what is still queued, for at most closeFlushTimeout (amqp091
// may queue a frame just before it closes: the connection.close-ok it owes
// a broker that closed the connection), stops the writer and closes the
// socket. The deadline also ends a write the writer is blocked in.
func (b *batchConn) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.room.Broadcast()
	b.mu.Unlock()
	_ = b.Conn.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
	close(b.stop)
	<-b.done
	err := b.Conn.Close()
	if errors.Is(err, net.ErrClosed) {
		err = nil // a failed write closed it already
	}
	return err
}

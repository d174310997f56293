package rpc

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"
)

// dialTimeout bounds the TCP connect and the AMQP handshake of one dial.
const dialTimeout = 5 * time.Second

// sessionHandler builds what lives on one connection. The link calls up
// after each successful dial, and down once that connection is gone and every
// goroutine of the session has ended.
type sessionHandler interface {
	// up declares topology, opens channels and starts the session's
	// goroutines (with s.goroutine). An error closes the connection and
	// retries after a backoff.
	up(s *session) error
	// stopping is called when the link's context ends while a session is
	// up, before its connection closes: a chance to wind down gracefully.
	stopping(s *session)
	// down is called after the session's connection closed and its
	// goroutines ended. err is why (nil when the link was stopped).
	down(s *session, err error)
}

// link keeps one AMQP connection up: it dials, hands the connection to its
// sessionHandler, waits for the connection (or any channel of the session)
// to die, and redials with capped, jittered exponential backoff until its
// context ends. It is the only place that dials.
type link struct {
	url    string
	name   string
	min    time.Duration
	max    time.Duration
	h      sessionHandler
	logger *zap.Logger

	reconnects atomic.Uint64
}

// session is one live connection and the goroutines and channels built on it.
type session struct {
	conn *amqp.Connection

	// dead is closed when the connection or any channel opened with
	// channel() closed; the link then tears the session down.
	dead     chan struct{}
	deadOnce sync.Once
	deadErr  atomic.Pointer[amqp.Error]

	wg sync.WaitGroup
}

// run keeps the link up until ctx ends.
func (l *link) run(ctx context.Context) {
	for attempt := 0; ; attempt++ {
		wasUp, err := l.once(ctx)
		if ctx.Err() != nil {
			return
		}
		if wasUp {
			attempt = 0 // the session was up: start over from the floor
		}
		l.reconnects.Add(1)
		d := backoff(l.min, l.max, attempt)
		l.logger.Warn("broker link down, reconnecting",
			zap.String("connection_name", l.name),
			zap.String("url", redactURL(l.url)),
			zap.Duration("delay", d),
			zap.Error(err))
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// once dials and runs one session until it ends. It reports whether the
// session was up, and why it ended or did not come up.
func (l *link) once(ctx context.Context) (wasUp bool, err error) {
	conn, err := l.dial(ctx)
	if err != nil {
		return false, fmt.Errorf("dialing broker: %w", err)
	}
	s := &session{conn: conn, dead: make(chan struct{})}
	closes := conn.NotifyClose(make(chan *amqp.Error, 1))
	s.goroutine(func() {
		if e, ok := <-closes; ok {
			s.die(e)
		}
		s.die(nil)
	})
	if err := l.h.up(s); err != nil {
		_ = conn.Close()
		s.wg.Wait()
		l.h.down(s, err)
		return false, fmt.Errorf("setting up session: %w", err)
	}
	l.logger.Info("broker link up", zap.String("connection_name", l.name))
	var cause error
	select {
	case <-s.dead:
		if e := s.deadErr.Load(); e != nil {
			cause = e
		} else {
			cause = amqp.ErrClosed
		}
	case <-ctx.Done():
		l.h.stopping(s)
	}
	_ = conn.Close()
	s.wg.Wait()
	l.h.down(s, cause)
	return true, cause
}

func (l *link) dial(ctx context.Context) (*amqp.Connection, error) {
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName(l.name)
	return amqp.DialConfig(l.url, amqp.Config{
		Properties: props,
		Heartbeat:  10 * time.Second,
		Locale:     "en_US",
		Dial: func(network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: dialTimeout}
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// Bound the handshake; amqp091 clears the deadline once open.
			if err := c.SetDeadline(time.Now().Add(dialTimeout)); err != nil {
				_ = c.Close()
				return nil, err
			}
			return newBatchConn(c), nil
		},
	})
}

// die marks the session dead (idempotent).
func (s *session) die(e *amqp.Error) {
	s.deadOnce.Do(func() {
		if e != nil {
			s.deadErr.Store(e)
		}
		close(s.dead)
	})
}

// goroutine runs f as a goroutine the session owns: the link waits for it
// after the connection closed.
func (s *session) goroutine(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

// channel opens a channel whose unexpected closing kills the session.
func (s *session) channel() (*amqp.Channel, error) {
	ch, err := s.conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("opening channel: %w", err)
	}
	closes := ch.NotifyClose(make(chan *amqp.Error, 1))
	s.goroutine(func() {
		// amqp091 closes the notify channel on every shutdown; a value
		// comes first when the shutdown was abnormal.
		if e, ok := <-closes; ok {
			s.die(e)
			for range closes {
			}
		}
	})
	return ch, nil
}

// consumerEnded ends the session when one of its consumers stopped while
// the session lives (the broker cancelled it, say because its queue was
// deleted): the link reconnects and declares everything again.
func (s *session) consumerEnded(what string) {
	if !s.isDead() {
		s.die(&amqp.Error{Code: amqp.InternalError, Reason: what + " consumer ended"})
	}
}

// isDead reports whether the session died.
func (s *session) isDead() bool {
	select {
	case <-s.dead:
		return true
	default:
		return false
	}
}

// backoff returns the delay before reconnect attempt n (0-based): base*2^n
// capped at hi, with "equal jitter" (half fixed, half random), so a fleet of
// gateways and workers do not reconnect in lockstep.
func backoff(lo, hi time.Duration, n int) time.Duration {
	if lo <= 0 {
		lo = time.Millisecond
	}
	if hi < lo {
		hi = lo
	}
	d := lo
	for i := 0; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	half := d / 2
	return half + rand.N(d-half+1)
}

// redactURL hides the password of an AMQP URL for logs.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid url)"
	}
	return u.Redacted()
}

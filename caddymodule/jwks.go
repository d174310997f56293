package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

const (
	// maxJWKSSize bounds a JWKS document, from a file or a URL.
	maxJWKSSize = 1 << 20
	// jwksFetchTimeout bounds one JWKS download.
	jwksFetchTimeout = 10 * time.Second
	// jwksMinURLRefresh is the least time between two downloads of a JWKS
	// URL asked for by tokens with an unknown kid, so that made-up kids
	// cannot turn the gateway into a load generator against the key server.
	jwksMinURLRefresh = 10 * time.Second
	// jwksWait bounds how long a request waits for a refresh of the keys
	// (the first download of a JWKS URL, or one asked for by an unknown kid).
	jwksWait = 5 * time.Second
)

// jwksSource keeps the keys of JWKS files and URLs fresh. Files are read in
// Provision (a bad file is a config error); URLs are first downloaded when a
// token needs them, never in Provision. A goroutine started on first use and
// stopped by close refreshes every source each interval, and at once (files
// when changed on disk, URLs at most every jwksMinURLRefresh) when a token
// names an unknown kid. A source that fails to load keeps its last good keys.
type jwksSource struct {
	parent   context.Context
	files    []string
	urls     []string
	interval time.Duration
	client   *http.Client
	logger   *zap.Logger

	keys atomic.Pointer[keySet] // the union of every source's last good keys

	mu        sync.Mutex
	bySource  map[string]*keySet
	fileStamp map[string]fileStamp
	urlLoaded time.Time     // last download attempt of the URLs
	loadedCh  chan struct{} // closed at the end of each refresh, then replaced
	// refreshing is set while a refresh runs: a refresh that started
	// before a file changed may publish the old keys, so a waiter that
	// kicked during it waits for the next one too
	refreshing bool
	kick       chan struct{} // asks the goroutine for a refresh now
	started    bool
	closed     bool
	cancel     context.CancelFunc
	done       chan struct{}
}

// fileStamp tells whether a file changed since it was read.
type fileStamp struct {
	mod  time.Time
	size int64
}

// newJWKSSource returns a source for files and urls, refreshed every
// interval. It reads the files at once and fails when one cannot be used.
// Its goroutine ends with parent or close, whichever comes first.
func newJWKSSource(parent context.Context, files, urls []string, interval time.Duration, logger *zap.Logger) (*jwksSource, error) {
	s := &jwksSource{
		parent:    parent,
		files:     files,
		urls:      urls,
		interval:  interval,
		client:    &http.Client{Timeout: jwksFetchTimeout, Transport: http.DefaultTransport.(*http.Transport).Clone()},
		logger:    logger,
		bySource:  make(map[string]*keySet),
		fileStamp: make(map[string]fileStamp),
		loadedCh:  make(chan struct{}),
		kick:      make(chan struct{}, 1),
	}
	for _, f := range files {
		if _, err := s.loadFile(f, true); err != nil {
			return nil, fmt.Errorf("jwks_file %s: %v", f, err)
		}
	}
	s.publish()
	return s, nil
}

// current returns the keys, starting the refresher on first use and, while
// a URL has never been downloaded, waiting (bounded by ctx and jwksWait)
// for its first download.
func (s *jwksSource) current(ctx context.Context) *keySet {
	s.start()
	if len(s.urls) > 0 {
		s.mu.Lock()
		never := s.urlLoaded.IsZero()
		ch := s.loadedCh
		s.mu.Unlock()
		if never {
			waitClosed(ctx, ch)
		}
	}
	return s.keys.Load()
}

// refreshForKID is called when a token names a kid no key has: it asks for a
// refresh (files changed on disk, URLs not downloaded in the last
// jwksMinURLRefresh) and waits for it, bounded by ctx and jwksWait. It
// reports whether a refresh happened.
func (s *jwksSource) refreshForKID(ctx context.Context) bool {
	s.start()
	s.mu.Lock()
	due := len(s.urls) > 0 && time.Since(s.urlLoaded) >= jwksMinURLRefresh
	if !due {
		for _, f := range s.files {
			if st, err := statFile(f); err == nil && !st.same(s.fileStamp[f]) {
				due = true
				break
			}
		}
	}
	ch, stale := s.loadedCh, s.refreshing
	s.mu.Unlock()
	if !due {
		if stale {
			// a running refresh already read the files as they are now
			// (their stamps are current) and has yet to publish its keys
			return waitClosed(ctx, ch)
		}
		return false
	}
	select {
	case s.kick <- struct{}{}:
	default:
	}
	if !waitClosed(ctx, ch) {
		return false
	}
	if stale {
		// the refresh that was running may have read the files before
		// they changed: wait for the one the kick asked for
		s.mu.Lock()
		ch = s.loadedCh
		s.mu.Unlock()
		return waitClosed(ctx, ch)
	}
	return true
}

// start starts the refresher goroutine once, unless the source is closed.
func (s *jwksSource) start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.closed {
		return
	}
	s.started = true
	ctx, cancel := context.WithCancel(s.parent)
	s.cancel = cancel
	s.done = make(chan struct{})
	go s.run(ctx)
}

// close stops the refresher, waits for it to return and closes the idle
// connections of its HTTP client.
func (s *jwksSource) close() {
	s.mu.Lock()
	s.closed = true
	cancel, done := s.cancel, s.done
	s.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	s.client.CloseIdleConnections()
}

// run refreshes every interval and when kicked, until ctx ends.
func (s *jwksSource) run(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(s.interval)
	defer t.Stop()
	s.refresh(ctx, true) // first download of the URLs
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.refresh(ctx, true)
		case <-s.kick:
			s.mu.Lock()
			urlsDue := time.Since(s.urlLoaded) >= jwksMinURLRefresh
			s.mu.Unlock()
			s.refresh(ctx, urlsDue)
		}
	}
}

// refresh reloads the files that changed and, with urls, downloads the URLs;
// then it publishes the keys and wakes the requests waiting for it.
func (s *jwksSource) refresh(ctx context.Context, urls bool) {
	s.mu.Lock()
	s.refreshing = true
	s.mu.Unlock()
	for _, f := range s.files {
		if _, err := s.loadFile(f, false); err != nil {
			s.logger.Warn("reloading jwks file; keeping its previous keys", zap.String("file", f), zap.Error(err))
		}
	}
	if urls && len(s.urls) > 0 {
		for _, u := range s.urls {
			if err := s.loadURL(ctx, u); err != nil && ctx.Err() == nil {
				s.logger.Warn("downloading jwks; keeping its previous keys", zap.String("url", u), zap.Error(err))
			}
		}
		s.mu.Lock()
		s.urlLoaded = time.Now()
		s.mu.Unlock()
	}
	s.publish()
}

// loadFile reads a JWKS file if it changed (or always, with force) and
// reports whether it did.
func (s *jwksSource) loadFile(name string, force bool) (bool, error) {
	st, err := statFile(name)
	if err != nil {
		return false, err
	}
	s.mu.Lock()
	same := s.fileStamp[name].same(st)
	s.mu.Unlock()
	if same && !force {
		return false, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return false, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxJWKSSize+1))
	if err != nil {
		return false, err
	}
	if len(data) > maxJWKSSize {
		return false, fmt.Errorf("larger than %d bytes", maxJWKSSize)
	}
	ks, skipped, err := parseJWKS(data)
	if err != nil {
		return false, err
	}
	s.logSkipped(name, skipped)
	s.mu.Lock()
	s.bySource["file:"+name] = ks
	s.fileStamp[name] = st
	s.mu.Unlock()
	return true, nil
}

// loadURL downloads one JWKS URL.
func (s *jwksSource) loadURL(ctx context.Context, u string) error {
	ctx, cancel := context.WithTimeout(ctx, jwksFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSSize+1))
	if err != nil {
		return err
	}
	if len(data) > maxJWKSSize {
		return fmt.Errorf("larger than %d bytes", maxJWKSSize)
	}
	ks, skipped, err := parseJWKS(data)
	if err != nil {
		return err
	}
	s.logSkipped(u, skipped)
	s.mu.Lock()
	s.bySource["url:"+u] = ks
	s.mu.Unlock()
	return nil
}

// publish makes the union of the sources' keys current, when it differs
// from the current keys, and wakes waiters.
func (s *jwksSource) publish() {
	s.mu.Lock()
	defer s.mu.Unlock()
	sets := make([]*keySet, 0, len(s.files)+len(s.urls))
	for _, f := range s.files {
		sets = append(sets, s.bySource["file:"+f])
	}
	for _, u := range s.urls {
		sets = append(sets, s.bySource["url:"+u])
	}
	// the same keys stay the same set: tokens verified with them stay
	// cached across refreshes that changed nothing
	if ks := mergeKeySets(sets...); !ks.equal(s.keys.Load()) {
		s.keys.Store(ks)
	}
	s.refreshing = false
	close(s.loadedCh)
	s.loadedCh = make(chan struct{})
}

func (s *jwksSource) logSkipped(source string, skipped []string) {
	for _, why := range skipped {
		s.logger.Warn("skipping jwks key", zap.String("source", source), zap.String("reason", why))
	}
}

// same reports whether two stamps are those of one version of a file.
func (a fileStamp) same(b fileStamp) bool { return a.mod.Equal(b.mod) && a.size == b.size }

// statFile returns the change stamp of a file.
func statFile(name string) (fileStamp, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return fileStamp{}, err
	}
	if fi.IsDir() {
		return fileStamp{}, errors.New("is a directory")
	}
	return fileStamp{mod: fi.ModTime(), size: fi.Size()}, nil
}

// waitClosed waits for ch to close, at most jwksWait and while ctx lasts, and
// reports whether it closed.
func waitClosed(ctx context.Context, ch <-chan struct{}) bool {
	t := time.NewTimer(jwksWait)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-ctx.Done():
		return false
	case <-t.C:
		return false
	}
}

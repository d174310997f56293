package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/scrapegate/scrapegate/rpc"
	"github.com/scrapegate/scrapegate/worker"
)

// options are the command's settings, from flags over environment variables
// over defaults.
type options struct {
	amqpURL           string
	pool              string
	concurrency       int
	scriptsDir        string
	heartbeatInterval time.Duration
	workerID          string
	allowNetworks     []netip.Prefix
	gracePeriod       time.Duration
	queueType         string
	logLevel          zapcore.Level
	logFormat         string
	scriptEnv         []string
	scriptTimeout     time.Duration
	maxOutputBytes    int64
}

// envFlags registers flags whose defaults come from environment variables,
// collecting the errors of bad variable values.
type envFlags struct {
	fs     *flag.FlagSet
	getenv func(string) string
	errs   []error
}

func (e *envFlags) env(name, def string) string {
	if v := e.getenv(name); v != "" {
		return v
	}
	return def
}

func (e *envFlags) string(p *string, name, env, def, usage string) {
	e.fs.StringVar(p, name, e.env(env, def), usage+" (env "+env+")")
}

func (e *envFlags) int(p *int, name, env string, def int, usage string) {
	v := def
	if s := e.getenv(env); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("%s: not an integer: %q", env, s))
		}
		v = n
	}
	e.fs.IntVar(p, name, v, usage+" (env "+env+")")
}

func (e *envFlags) int64(p *int64, name, env string, def int64, usage string) {
	v := def
	if s := e.getenv(env); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("%s: not an integer: %q", env, s))
		}
		v = n
	}
	e.fs.Int64Var(p, name, v, usage+" (env "+env+")")
}

func (e *envFlags) duration(p *time.Duration, name, env string, def time.Duration, usage string) {
	v := def
	if s := e.getenv(env); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("%s: not a duration: %q", env, s))
		}
		v = d
	}
	e.fs.DurationVar(p, name, v, usage+" (env "+env+")")
}

// parseOptions reads the flags and environment and checks every value.
func parseOptions(args []string, getenv func(string) string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("scrapegate-worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: scrapegate-worker [flags]\n\nTakes scraping tasks from RabbitMQ, runs the named script and replies.\nEvery flag can be set by the environment variable named after it; a flag wins.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	e := &envFlags{fs: fs, getenv: getenv}
	var o options
	var allow, level, scriptEnv string
	e.string(&o.amqpURL, "amqp-url", "AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/", "the broker's `URL`")
	e.string(&o.pool, "pool", "WORKER_POOL", rpc.DefaultPool, "worker `pool`: the worker consumes the queue scrape.tasks.<pool>")
	e.int(&o.concurrency, "concurrency", "WORKER_CONCURRENCY", rpc.DefaultConcurrency, "tasks run at once (and prefetched)")
	e.string(&o.scriptsDir, "scripts-dir", "SCRIPTS_DIR", "", "`directory` of external scripts, <dir>/<name>/<version>/manifest.json; none: built-ins only")
	e.duration(&o.heartbeatInterval, "heartbeat-interval", "WORKER_HEARTBEAT_INTERVAL", rpc.DefaultHeartbeatInterval, "how often the worker announces itself")
	e.string(&o.workerID, "worker-id", "WORKER_ID", "", "worker `id` in replies, events and heartbeats (default <hostname>-<pid>-<random>)")
	e.string(&allow, "allow-networks", "WORKER_ALLOW_NETWORKS", "", "comma-separated `CIDRs` the built-ins may connect to although they are not public (loopback, private, link-local, ...)")
	e.duration(&o.gracePeriod, "grace-period", "WORKER_GRACE_PERIOD", rpc.DefaultGracePeriod, "on SIGINT/SIGTERM, how long running tasks may still take; the rest are requeued")
	e.string(&o.queueType, "queue-type", "WORKER_QUEUE_TYPE", rpc.QueueClassic, "type of the pool's queue: classic or quorum (the same for every worker of a pool)")
	e.string(&level, "log-level", "WORKER_LOG_LEVEL", "info", "log `level`: debug, info, warn or error")
	e.string(&o.logFormat, "log-format", "WORKER_LOG_FORMAT", "json", "log `format`: json or console")
	e.string(&scriptEnv, "script-env", "WORKER_SCRIPT_ENV", "", "comma-separated `names` of environment variables passed on to external scripts (PATH always is)")
	e.duration(&o.scriptTimeout, "script-timeout", "WORKER_SCRIPT_TIMEOUT", worker.DefaultScriptTimeout, "longest run of an external script whose manifest sets no timeout")
	e.int64(&o.maxOutputBytes, "max-output-bytes", "WORKER_MAX_OUTPUT_BYTES", worker.DefaultMaxOutputBytes, "largest stdout of an external script")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if err := errors.Join(e.errs...); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	u, err := url.Parse(o.amqpURL)
	if err != nil || (u.Scheme != "amqp" && u.Scheme != "amqps") {
		return nil, errors.New("-amqp-url: want an amqp:// or amqps:// URL")
	}
	if o.concurrency < 1 {
		return nil, fmt.Errorf("-concurrency: must be at least 1, got %d", o.concurrency)
	}
	if o.heartbeatInterval <= 0 {
		return nil, fmt.Errorf("-heartbeat-interval: must be positive, got %s", o.heartbeatInterval)
	}
	if o.gracePeriod <= 0 {
		return nil, fmt.Errorf("-grace-period: must be positive, got %s", o.gracePeriod)
	}
	if o.scriptTimeout <= 0 {
		return nil, fmt.Errorf("-script-timeout: must be positive, got %s", o.scriptTimeout)
	}
	if o.maxOutputBytes <= 0 {
		return nil, fmt.Errorf("-max-output-bytes: must be positive, got %d", o.maxOutputBytes)
	}
	if o.queueType != rpc.QueueClassic && o.queueType != rpc.QueueQuorum {
		return nil, fmt.Errorf("-queue-type: want %s or %s, got %q", rpc.QueueClassic, rpc.QueueQuorum, o.queueType)
	}
	if o.scriptsDir != "" {
		if fi, err := os.Stat(o.scriptsDir); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("-scripts-dir: %s is not a readable directory", o.scriptsDir)
		}
	}
	if o.pool == "" || strings.ContainsAny(o.pool, " \t\r\n") {
		return nil, fmt.Errorf("-pool: want a name without white space, got %q", o.pool)
	}
	for i, s := range splitList(allow) {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("-allow-networks: item %d: %q is not a CIDR or an address", i+1, s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		o.allowNetworks = append(o.allowNetworks, p.Masked())
	}
	if o.logLevel, err = zapcore.ParseLevel(level); err != nil {
		return nil, fmt.Errorf("-log-level: %w", err)
	}
	if o.logFormat != "json" && o.logFormat != "console" {
		return nil, fmt.Errorf("-log-format: want json or console, got %q", o.logFormat)
	}
	o.scriptEnv = []string{"PATH=" + getenv("PATH")}
	if getenv("PATH") == "" {
		o.scriptEnv = nil // the runtime's default PATH
	}
	for _, name := range splitList(scriptEnv) {
		if name == "PATH" {
			continue
		}
		if v := getenv(name); v != "" {
			o.scriptEnv = append(o.scriptEnv, name+"="+v)
		}
	}
	return &o, nil
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// newLogger builds the zap logger writing to w.
func newLogger(level zapcore.Level, format string, w io.Writer) *zap.Logger {
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	if format == "console" {
		encCfg.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	} else {
		enc = zapcore.NewJSONEncoder(encCfg)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), level), zap.ErrorOutput(zapcore.Lock(zapcore.AddSync(w))))
}

// run is the whole command: it validates its settings, serves until ctx
// ends, then stops gracefully (stop consuming, let running tasks finish
// within the grace period, requeue the rest, close the connection).
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	o, err := parseOptions(args, getenv, stderr)
	if err != nil {
		return err
	}
	if o.workerID == "" {
		o.workerID = defaultWorkerID()
	}
	logger := newLogger(o.logLevel, o.logFormat, stderr).With(zap.String("worker_id", o.workerID))
	defer func() { _ = logger.Sync() }()

	rt, err := worker.New(worker.Config{
		ScriptsDir:           o.scriptsDir,
		AllowNetworks:        o.allowNetworks,
		MaxOutputBytes:       o.maxOutputBytes,
		DefaultScriptTimeout: o.scriptTimeout,
		ScriptEnv:            o.scriptEnv,
		Logger:               logger.Named("runtime"),
	})
	if err != nil {
		return fmt.Errorf("loading scripts: %w", err)
	}
	defer func() { _ = rt.Close() }()
	srv, err := rpc.NewServer(rpc.ServerConfig{
		URL:               o.amqpURL,
		WorkerID:          o.workerID,
		Pool:              o.pool,
		Concurrency:       o.concurrency,
		QueueType:         o.queueType,
		HeartbeatInterval: o.heartbeatInterval,
		GracePeriod:       o.gracePeriod,
		Logger:            logger.Named("rpc"),
	}, rt)
	if err != nil {
		return err
	}
	rt.OnChange(srv.Refresh)

	// Helpers live until Serve returns.
	hctx, stopHelpers := context.WithCancel(ctx)
	var helpers sync.WaitGroup
	defer helpers.Wait()
	defer stopHelpers()
	helpers.Go(func() {
		if err := rt.Watch(hctx); err != nil {
			logger.Warn("not watching the scripts directory; SIGHUP still rescans it", zap.Error(err))
		}
	})
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	helpers.Go(func() {
		for {
			select {
			case <-hctx.Done():
				return
			case <-hup:
				changed, err := rt.Rescan()
				if err != nil {
					logger.Warn("rescanning the scripts directory", zap.Error(err))
					continue
				}
				logger.Info("rescanned the scripts directory on SIGHUP", zap.Bool("changed", changed))
			}
		}
	})
	helpers.Go(func() {
		select {
		case <-hctx.Done():
		case <-srv.Ready():
			names := make([]string, 0, 8)
			for _, s := range rt.Scripts() {
				names = append(names, s.Name)
			}
			logger.Info("worker ready", zap.String("pool", o.pool), zap.Int("concurrency", o.concurrency), zap.Strings("scripts", names))
		}
	})

	logger.Info("worker starting", zap.String("amqp_url", redact(o.amqpURL)), zap.String("pool", o.pool),
		zap.String("queue_type", o.queueType), zap.Int("concurrency", o.concurrency), zap.String("scripts_dir", o.scriptsDir))
	err = srv.Serve(ctx)
	st := srv.Stats()
	logger.Info("worker stopped", zap.Uint64("tasks", st.Tasks), zap.Uint64("completed", st.Completed), zap.Uint64("failed", st.Failed),
		zap.Uint64("expired", st.Expired), zap.Uint64("cancelled", st.Cancelled))
	return err
}

// defaultWorkerID is <hostname>-<pid>-<6 random hex digits>.
func defaultWorkerID() string {
	host, _ := os.Hostname()
	if host == "" {
		host = "worker"
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}

// redact hides the password of a URL.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable)"
	}
	return u.Redacted()
}

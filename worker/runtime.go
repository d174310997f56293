package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/scrapegate/scrapegate/rpc"
)

// Defaults of Config.
const (
	DefaultMaxOutputBytes       = 8 << 20
	DefaultStderrTailBytes      = 4 << 10
	DefaultScriptTimeout        = 5 * time.Minute
	DefaultFetchMaxBodyBytes    = 5 << 20
	DefaultFetchMaxRedirects    = 10
	DefaultFetchTimeout         = 60 * time.Second
	DefaultWatchDebounce        = 250 * time.Millisecond
	defaultScriptPATH           = "/usr/local/bin:/usr/bin:/bin"
	builtinVersion              = "1.0.0"
	maxScriptNameLen            = 128
	parametersSchemaDescription = "parameters_schema"
)

// scriptNameRE is the script name rule of the HTTP API.
var scriptNameRE = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

// Config configures a Runtime. The zero value serves the built-ins only, with
// the defaults below.
type Config struct {
	// ScriptsDir is the directory of external scripts, laid out as
	// <ScriptsDir>/<name>/<version>/manifest.json. Empty: built-ins only.
	ScriptsDir string
	// AllowNetworks are networks the built-ins may connect to although the
	// refusal rules (loopback, private, link-local, ...) would refuse them.
	AllowNetworks []netip.Prefix
	// MaxOutputBytes caps a task's data: an external script's stdout (more
	// kills the script) and a built-in's result; more fails the task with
	// OUTPUT_TOO_LARGE. Default 8 MiB, so that a reply stays well below the
	// broker's max_message_size (16 MiB by default since RabbitMQ 4.0).
	MaxOutputBytes int64
	// StderrTailBytes is how much of the end of a script's stderr is kept for
	// the error message and the log. Default 4 KiB.
	StderrTailBytes int
	// DefaultScriptTimeout bounds an external script whose manifest sets no
	// timeout (the task's deadline bounds it too). Default 5 minutes.
	DefaultScriptTimeout time.Duration
	// ScriptEnv is the whole environment of external scripts besides the
	// variables the runtime sets itself (HOME, TMPDIR, SCRIPT_*), as KEY=VALUE
	// pairs. The worker's own environment is never passed on. When it has no
	// PATH, PATH is /usr/local/bin:/usr/bin:/bin.
	ScriptEnv []string
	// TempDir is where the per-task working directories are made. Default:
	// os.TempDir().
	TempDir string
	// FetchMaxBodyBytes caps the body http_fetch and html_extract read.
	// Default 5 MiB (in base64, a binary body grows by a third).
	FetchMaxBodyBytes int64
	// FetchMaxRedirects caps the redirects they follow. Default 10.
	FetchMaxRedirects int
	// FetchTimeout caps the time of one fetch (the task's deadline bounds it
	// too). Default 60s.
	FetchTimeout time.Duration
	// WatchDebounce is how long Watch waits for changes in the scripts
	// directory to settle before it rescans. Default 250ms.
	WatchDebounce time.Duration
	// Logger receives the runtime's logs. Default: zap.NewNop().
	Logger *zap.Logger
}

func (c *Config) setDefaults() {
	if c.MaxOutputBytes <= 0 {
		c.MaxOutputBytes = DefaultMaxOutputBytes
	}
	if c.StderrTailBytes <= 0 {
		c.StderrTailBytes = DefaultStderrTailBytes
	}
	if c.DefaultScriptTimeout <= 0 {
		c.DefaultScriptTimeout = DefaultScriptTimeout
	}
	if c.TempDir == "" {
		c.TempDir = os.TempDir()
	}
	if c.FetchMaxBodyBytes <= 0 {
		c.FetchMaxBodyBytes = DefaultFetchMaxBodyBytes
	}
	if c.FetchMaxRedirects <= 0 {
		c.FetchMaxRedirects = DefaultFetchMaxRedirects
	}
	if c.FetchTimeout <= 0 {
		c.FetchTimeout = DefaultFetchTimeout
	}
	if c.WatchDebounce <= 0 {
		c.WatchDebounce = DefaultWatchDebounce
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if !slices.ContainsFunc(c.ScriptEnv, func(kv string) bool { return strings.HasPrefix(kv, "PATH=") }) {
		c.ScriptEnv = append(slices.Clone(c.ScriptEnv), "PATH="+defaultScriptPATH)
	}
}

// Validate reports the first bad setting, naming the field.
func (c Config) Validate() error {
	for i, kv := range c.ScriptEnv {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("ScriptEnv %d: want KEY=VALUE", i)
		}
	}
	if c.ScriptsDir != "" {
		fi, err := os.Stat(c.ScriptsDir)
		if err != nil {
			return fmt.Errorf("ScriptsDir: %w", err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("ScriptsDir: %s is not a directory", c.ScriptsDir)
		}
	}
	return nil
}

// Runtime runs scripts; it implements rpc.Handler. It is safe for concurrent use.
type Runtime struct {
	cfg      Config
	logger   *zap.Logger
	fetcher  *fetcher
	builtins map[string]*scriptSet

	rescanMu sync.Mutex // serialises Rescan

	mu       sync.RWMutex
	scripts  map[string]*scriptSet // built-ins and external scripts by name
	infos    []rpc.ScriptInfo      // what Scripts returns, sorted by name
	infoJSON []byte                // infos marshalled, to tell a change
	onChange func()
}

// scriptSet is the versions of one script, oldest first.
type scriptSet struct {
	name     string
	versions []*scriptVersion
}

// scriptVersion is one runnable version of a script.
type scriptVersion struct {
	name        string
	version     string
	semver      *semver.Version
	description string
	schemaDoc   json.RawMessage
	schema      *jsonschema.Schema
	// run runs it with validated parameters.
	run func(ctx context.Context, c *call) (json.RawMessage, error)
}

// call is one run of a script.
type call struct {
	requestID string
	params    json.RawMessage
	logger    *zap.Logger
}

// New makes a Runtime and scans the scripts directory once.
func New(cfg Config) (*Runtime, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	rt := &Runtime{cfg: cfg, logger: cfg.Logger}
	rt.fetcher = newFetcher(cfg)
	builtins, err := rt.makeBuiltins()
	if err != nil {
		return nil, err
	}
	rt.builtins = builtins
	if _, err := rt.Rescan(); err != nil {
		return nil, err
	}
	return rt, nil
}

// OnChange sets the function called after a rescan changes what Scripts
// returns (a new or removed script or version, a new description or schema);
// the worker passes the rpc Server's Refresh.
func (rt *Runtime) OnChange(f func()) {
	rt.mu.Lock()
	rt.onChange = f
	rt.mu.Unlock()
}

// Scripts lists the scripts served, built-ins included, sorted by name. The
// description and parameters schema are the newest version's.
func (rt *Runtime) Scripts() []rpc.ScriptInfo {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	return slices.Clone(rt.infos)
}

// Close releases idle connections of the built-ins.
func (rt *Runtime) Close() error {
	rt.fetcher.transport.CloseIdleConnections()
	return nil
}

// Rescan reads the scripts directory again and swaps in what it finds; it
// reports whether what Scripts returns changed (and then calls the OnChange
// function). A bad script version is skipped with a warning in the log; only
// an unreadable directory is an error, and then the scripts stay as they were.
func (rt *Runtime) Rescan() (changed bool, err error) {
	rt.rescanMu.Lock()
	defer rt.rescanMu.Unlock()
	scripts := make(map[string]*scriptSet, len(rt.builtins))
	for name, set := range rt.builtins {
		scripts[name] = set
	}
	if rt.cfg.ScriptsDir != "" {
		external, err := rt.scanDir(rt.cfg.ScriptsDir)
		if err != nil {
			return false, err
		}
		for name, set := range external {
			scripts[name] = set
		}
	}
	infos := make([]rpc.ScriptInfo, 0, len(scripts))
	for _, set := range scripts {
		infos = append(infos, set.info())
	}
	slices.SortFunc(infos, func(a, b rpc.ScriptInfo) int { return strings.Compare(a.Name, b.Name) })
	infoJSON, err := json.Marshal(infos)
	if err != nil {
		return false, fmt.Errorf("marshalling script list: %w", err)
	}

	rt.mu.Lock()
	changed = rt.infoJSON != nil && !bytes.Equal(rt.infoJSON, infoJSON)
	rt.scripts, rt.infos, rt.infoJSON = scripts, infos, infoJSON
	onChange := rt.onChange
	rt.mu.Unlock()

	if changed {
		names := make([]string, len(infos))
		for i, in := range infos {
			names[i] = in.Name + "@" + strings.Join(in.Versions, ",")
		}
		rt.logger.Info("scripts changed", zap.Strings("scripts", names))
		if onChange != nil {
			onChange()
		}
	}
	return changed, nil
}

// info is the advertised form of a script set.
func (s *scriptSet) info() rpc.ScriptInfo {
	newest := s.versions[len(s.versions)-1]
	versions := make([]string, len(s.versions))
	for i, v := range s.versions {
		versions[i] = v.version
	}
	return rpc.ScriptInfo{
		Name:             s.name,
		Versions:         versions,
		Description:      newest.description,
		ParametersSchema: newest.schemaDoc,
	}
}

// lookup finds the version of a script a task asks for: the newest when it
// names none.
func (rt *Runtime) lookup(name string, version *string) (*scriptVersion, error) {
	rt.mu.RLock()
	set := rt.scripts[name]
	rt.mu.RUnlock()
	if set == nil {
		return nil, &rpc.TaskError{Code: rpc.CodeUnknownVersion, Message: fmt.Sprintf("script %q has no versions on this worker", name)}
	}
	if version == nil || *version == "" {
		return set.versions[len(set.versions)-1], nil
	}
	want, perr := semver.NewVersion(*version)
	for _, v := range set.versions {
		if v.version == *version || (perr == nil && v.semver.Equal(want)) {
			return v, nil
		}
	}
	have := make([]string, len(set.versions))
	for i, v := range set.versions {
		have[i] = v.version
	}
	return nil, &rpc.TaskError{
		Code:    rpc.CodeUnknownVersion,
		Message: fmt.Sprintf("script %q has no version %q; versions: %s", name, *version, strings.Join(have, ", ")),
	}
}

// Run runs one task: it finds the script and version, checks the parameters
// against the script's schema and runs it until it ends or ctx does. Every
// error is an *rpc.TaskError.
func (rt *Runtime) Run(ctx context.Context, t rpc.Task) (json.RawMessage, error) {
	sv, err := rt.lookup(t.ScriptName, t.ScriptVersion)
	if err != nil {
		return nil, err
	}
	params := bytes.TrimSpace(t.Parameters)
	if len(params) == 0 || string(params) == "null" {
		params = []byte("{}")
	}
	if err := validateParams(sv.schema, params); err != nil {
		return nil, &rpc.TaskError{Code: rpc.CodeInvalidParameters, Message: err.Error()}
	}
	logger := rt.logger.With(zap.String("request_id", t.RequestID), zap.String("script", sv.name), zap.String("version", sv.version))
	start := time.Now()
	if ce := logger.Check(zapcore.DebugLevel, "running script"); ce != nil {
		ce.Write()
	}
	data, err := sv.run(ctx, &call{requestID: t.RequestID, params: params, logger: logger})
	if err != nil {
		te := taskError(ctx, err)
		if ce := logger.Check(zapcore.InfoLevel, "task failed"); ce != nil {
			ce.Write(zap.Duration("duration", time.Since(start)), zap.String("error_code", te.Code), zap.String("error", te.Message))
		}
		return nil, te
	}
	if int64(len(data)) > rt.cfg.MaxOutputBytes {
		te := &rpc.TaskError{Code: rpc.CodeOutputTooLarge, Message: fmt.Sprintf("the result is larger than %d bytes", rt.cfg.MaxOutputBytes)}
		logger.Info("task failed", zap.Duration("duration", time.Since(start)), zap.String("error_code", te.Code), zap.String("error", te.Message))
		return nil, te
	}
	if ce := logger.Check(zapcore.InfoLevel, "task completed"); ce != nil {
		ce.Write(zap.Duration("duration", time.Since(start)), zap.Int("output_bytes", len(data)))
	}
	return data, nil
}

// taskError turns a script's error into the *rpc.TaskError of the reply: its
// own when it has one, else SCRIPT_TIMEOUT or CANCELLED when ctx ended, else
// SCRIPT_ERROR.
func taskError(ctx context.Context, err error) *rpc.TaskError {
	var te *rpc.TaskError
	if errors.As(err, &te) {
		return te
	}
	if ctxErr := ctxTaskError(ctx); ctxErr != nil {
		return ctxErr
	}
	return &rpc.TaskError{Code: rpc.CodeScriptError, Message: err.Error()}
}

// ctxTaskError is the failure of a task whose ctx ended: SCRIPT_TIMEOUT at
// the deadline, CANCELLED otherwise; nil while ctx is live.
func ctxTaskError(ctx context.Context) *rpc.TaskError {
	switch err := ctx.Err(); {
	case err == nil:
		return nil
	case errors.Is(err, context.DeadlineExceeded):
		return &rpc.TaskError{Code: rpc.CodeScriptTimeout, Message: "the task's deadline passed"}
	default:
		return &rpc.TaskError{Code: rpc.CodeCancelled, Message: "the task was cancelled"}
	}
}

// compileSchema compiles a parameters schema. Nothing is loaded from outside:
// $ref may point only inside the document (and at the standard metaschemas).
func compileSchema(id string, doc json.RawMessage) (*jsonschema.Schema, error) {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", parametersSchemaDescription, err)
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(jsonschema.SchemeURLLoader{})
	c.DefaultDraft(jsonschema.Draft2020)
	url := "mem:///" + id + "/parameters.schema.json"
	if err := c.AddResource(url, v); err != nil {
		return nil, fmt.Errorf("adding %s: %w", parametersSchemaDescription, err)
	}
	sch, err := c.Compile(url)
	if err != nil {
		return nil, fmt.Errorf("compiling %s: %w", parametersSchemaDescription, err)
	}
	return sch, nil
}

// validateParams checks parameters against a schema; the error lists every
// violation on one line.
func validateParams(sch *jsonschema.Schema, params []byte) error {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(params))
	if err != nil {
		return fmt.Errorf("parameters are not JSON: %v", err)
	}
	if _, ok := inst.(map[string]any); !ok {
		return errors.New("parameters must be a JSON object")
	}
	err = sch.Validate(inst)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return fmt.Errorf("validating parameters: %v", err)
	}
	var msgs []string
	for _, leaf := range leafErrors(ve, nil) {
		loc := "/" + strings.Join(leaf.InstanceLocation, "/")
		msgs = append(msgs, fmt.Sprintf("at %s: %s", loc, leaf.ErrorKind.LocalizedString(printer)))
	}
	if len(msgs) == 0 {
		return errors.New("parameters do not match the script's schema")
	}
	return fmt.Errorf("parameters do not match the script's schema: %s", strings.Join(msgs, "; "))
}

// printer renders schema violations in English.
var printer = message.NewPrinter(language.English)

// leafErrors returns the innermost causes of a validation error.
func leafErrors(ve *jsonschema.ValidationError, out []*jsonschema.ValidationError) []*jsonschema.ValidationError {
	if len(ve.Causes) == 0 {
		return append(out, ve)
	}
	for _, c := range ve.Causes {
		out = leafErrors(c, out)
	}
	return out
}

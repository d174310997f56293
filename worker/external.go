package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/Masterminds/semver/v3"
	"go.uber.org/zap"

	"github.com/scrapegate/scrapegate/rpc"
)

// ManifestFile is the name of the manifest in each version directory.
const ManifestFile = "manifest.json"

// scriptDirVar is expanded in a manifest's command to the version directory.
const scriptDirVar = "${SCRIPT_DIR}"

// defaultParametersSchema is the schema of a manifest that gives none.
const defaultParametersSchema = `{"type": "object"}`

// pipeDrainTimeout bounds the wait for a script's output pipes to close
// after its process group is gone (a process that left the group may still
// hold them).
const pipeDrainTimeout = 2 * time.Second

// Manifest describes one version of an external script, in
// <dir>/<name>/<version>/manifest.json:
//
//	{
//	  "command": ["python3", "${SCRIPT_DIR}/main.py"],
//	  "description": "Fetches a product page and returns its price.",
//	  "parameters_schema": {"type": "object", "required": ["url"],
//	                        "properties": {"url": {"type": "string"}}},
//	  "timeout": 30
//	}
//
// Unknown fields are an error, so a misspelt one is not silently ignored.
type Manifest struct {
	// Command is the argv to run. A first element with a slash in it is a
	// path relative to the version directory (unless absolute); without one,
	// it is looked up in the scripts' PATH. ${SCRIPT_DIR} in any element is
	// replaced by the version directory's absolute path. Required.
	Command []string `json:"command"`
	// Description says what the script does; the gateway lists it.
	Description string `json:"description"`
	// ParametersSchema is the JSON Schema (2020-12 unless $schema says
	// otherwise) that a task's parameters must match before the script
	// runs. Default: any JSON object.
	ParametersSchema json.RawMessage `json:"parameters_schema"`
	// Timeout is the longest the script may run: a number of seconds or a Go
	// duration string ("90s", "2m"). The task's deadline bounds it too.
	// Default: the worker's default script timeout (5 minutes).
	Timeout Duration `json:"timeout"`
}

// Duration is a time.Duration that decodes from a number of seconds or from
// a duration string.
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var secs float64
	if err := json.Unmarshal(b, &secs); err == nil {
		*d = Duration(secs * float64(time.Second))
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("want a number of seconds or a duration string")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// LoadManifest reads and checks the manifest of the version directory dir.
func LoadManifest(dir string) (*Manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", ManifestFile, err)
	}
	if len(m.Command) == 0 || m.Command[0] == "" {
		return nil, fmt.Errorf("%s: command is required", ManifestFile)
	}
	if m.Timeout < 0 {
		return nil, fmt.Errorf("%s: timeout is negative", ManifestFile)
	}
	if len(bytes.TrimSpace(m.ParametersSchema)) == 0 || string(bytes.TrimSpace(m.ParametersSchema)) == "null" {
		m.ParametersSchema = json.RawMessage(defaultParametersSchema)
	}
	return &m, nil
}

// externalScript is a runnable external script version.
type externalScript struct {
	dir     string   // absolute version directory
	argv    []string // resolved command
	timeout time.Duration
}

// scanDir reads the scripts directory. Bad entries are skipped with a warning.
func (rt *Runtime) scanDir(root string) (map[string]*scriptSet, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("scripts directory: %w", err)
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("reading scripts directory: %w", err)
	}
	sets := make(map[string]*scriptSet)
	for _, e := range entries {
		name := e.Name()
		dir := filepath.Join(root, name)
		if strings.HasPrefix(name, ".") || !isDir(dir) {
			continue
		}
		log := rt.logger.With(zap.String("path", dir))
		switch {
		case !scriptNameRE.MatchString(name) || len(name) > maxScriptNameLen:
			log.Warn("skipping script: the name is not [a-zA-Z0-9_-]{1,128}")
			continue
		case rt.builtins[name] != nil:
			log.Warn("skipping script: a built-in has that name")
			continue
		}
		set := &scriptSet{name: name}
		vdirs, err := os.ReadDir(dir)
		if err != nil {
			log.Warn("skipping script", zap.Error(err))
			continue
		}
		for _, v := range vdirs {
			vdir := filepath.Join(dir, v.Name())
			if strings.HasPrefix(v.Name(), ".") || !isDir(vdir) {
				continue
			}
			sv, err := rt.loadVersion(name, v.Name(), vdir)
			if err != nil {
				rt.logger.Warn("skipping script version", zap.String("path", vdir), zap.Error(err))
				continue
			}
			if i := slices.IndexFunc(set.versions, func(o *scriptVersion) bool { return o.semver.Equal(sv.semver) }); i >= 0 {
				// Two spellings of one version ("1.2" and "1.2.0"): the
				// canonical one wins.
				skipped, kept := sv, set.versions[i]
				if sv.version == sv.semver.String() {
					skipped, kept = kept, sv
					set.versions[i] = sv
				}
				rt.logger.Warn("skipping script version: another directory has the same version",
					zap.String("path", filepath.Join(dir, skipped.version)), zap.String("kept", kept.version))
				continue
			}
			set.versions = append(set.versions, sv)
		}
		if len(set.versions) == 0 {
			log.Warn("skipping script: no usable version")
			continue
		}
		slices.SortFunc(set.versions, func(a, b *scriptVersion) int { return a.semver.Compare(b.semver) })
		sets[name] = set
	}
	return sets, nil
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// loadVersion reads one version directory.
func (rt *Runtime) loadVersion(name, version, dir string) (*scriptVersion, error) {
	sv, err := semver.NewVersion(version)
	if err != nil {
		return nil, fmt.Errorf("version %q is not a semantic version: %w", version, err)
	}
	m, err := LoadManifest(dir)
	if err != nil {
		return nil, err
	}
	sch, err := compileSchema(name+"/"+version, m.ParametersSchema)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ManifestFile, err)
	}
	argv := make([]string, len(m.Command))
	for i, a := range m.Command {
		argv[i] = strings.ReplaceAll(a, scriptDirVar, dir)
	}
	if argv[0], err = rt.resolveCommand(dir, argv[0]); err != nil {
		return nil, fmt.Errorf("%s: command: %w", ManifestFile, err)
	}
	ext := &externalScript{dir: dir, argv: argv, timeout: time.Duration(m.Timeout)}
	if ext.timeout == 0 {
		ext.timeout = rt.cfg.DefaultScriptTimeout
	}
	var schemaDoc bytes.Buffer
	if err := json.Compact(&schemaDoc, m.ParametersSchema); err != nil {
		return nil, fmt.Errorf("%s: parameters_schema: %w", ManifestFile, err)
	}
	return &scriptVersion{
		name:        name,
		version:     version,
		semver:      sv,
		description: m.Description,
		schemaDoc:   schemaDoc.Bytes(),
		schema:      sch,
		run: func(ctx context.Context, c *call) (json.RawMessage, error) {
			return rt.runExternal(ctx, name, version, ext, c)
		},
	}, nil
}

// resolveCommand finds the program of a command: relative to the version
// directory when it has a slash, else in the scripts' PATH.
func (rt *Runtime) resolveCommand(dir, prog string) (string, error) {
	var candidates []string
	switch {
	case filepath.IsAbs(prog):
		candidates = []string{prog}
	case strings.ContainsRune(prog, '/'):
		candidates = []string{filepath.Join(dir, prog)}
	default:
		for _, p := range filepath.SplitList(rt.scriptEnv("PATH")) {
			if p != "" && filepath.IsAbs(p) {
				candidates = append(candidates, filepath.Join(p, prog))
			}
		}
	}
	for _, c := range candidates {
		if fi, err := os.Stat(c); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return c, nil
		}
	}
	if len(candidates) == 1 {
		return "", fmt.Errorf("%s is not an executable file", candidates[0])
	}
	return "", fmt.Errorf("%s not found in the scripts' PATH", prog)
}

// scriptEnv returns a variable of Config.ScriptEnv.
func (rt *Runtime) scriptEnv(key string) string {
	for _, kv := range slices.Backward(rt.cfg.ScriptEnv) {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v
		}
	}
	return ""
}

// errScriptTimeout is the cause of a script's context ending at the
// manifest's timeout.
var errScriptTimeout = errors.New("script timeout")

// runExternal runs an external script for one task.
func (rt *Runtime) runExternal(ctx context.Context, name, version string, ext *externalScript, c *call) (json.RawMessage, error) {
	sctx, cancel := context.WithTimeoutCause(ctx, ext.timeout, errScriptTimeout)
	defer cancel()
	deadline, _ := sctx.Deadline()

	workDir, err := os.MkdirTemp(rt.cfg.TempDir, "scrapegate-task-")
	if err != nil {
		return nil, &rpc.TaskError{Code: rpc.CodeWorkerError, Message: fmt.Sprintf("making the working directory: %v", err)}
	}
	defer func() {
		if err := os.RemoveAll(workDir); err != nil {
			c.logger.Warn("removing the working directory", zap.String("path", workDir), zap.Error(err))
		}
	}()
	stdin, err := paramsFile(workDir, c.params)
	if err != nil {
		return nil, &rpc.TaskError{Code: rpc.CodeWorkerError, Message: err.Error()}
	}
	defer stdin.Close()

	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, &rpc.TaskError{Code: rpc.CodeWorkerError, Message: fmt.Sprintf("making a pipe: %v", err)}
	}
	defer outR.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		outW.Close()
		return nil, &rpc.TaskError{Code: rpc.CodeWorkerError, Message: fmt.Sprintf("making a pipe: %v", err)}
	}
	defer errR.Close()

	cmd := &exec.Cmd{
		Path:   ext.argv[0],
		Args:   ext.argv,
		Dir:    workDir,
		Stdin:  stdin,
		Stdout: outW,
		Stderr: errW,
		Env: append(slices.Clone(rt.cfg.ScriptEnv),
			"HOME="+workDir,
			"TMPDIR="+workDir,
			"SCRIPT_NAME="+name,
			"SCRIPT_VERSION="+version,
			"SCRIPT_DIR="+ext.dir,
			"REQUEST_ID="+c.requestID,
			"SCRIPT_DEADLINE_MS="+strconv.FormatInt(deadline.UnixMilli(), 10),
		),
		// Its own process group, so that killing -pgid takes its children
		// too; and SIGKILL if the worker dies first.
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL},
	}
	start := time.Now()
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		return nil, &rpc.TaskError{Code: rpc.CodeScriptError, Message: fmt.Sprintf("starting the script: %v", err)}
	}
	pgid := cmd.Process.Pid
	c.logger.Debug("script started", zap.Int("pid", pgid))

	out := &limitedBuffer{limit: rt.cfg.MaxOutputBytes, over: make(chan struct{})}
	tail := &tailBuffer{size: rt.cfg.StderrTailBytes}
	var readers sync.WaitGroup
	readers.Go(func() { _, _ = io.Copy(out, outR) })
	readers.Go(func() { _, _ = io.Copy(tail, errR) })
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()

	var killedFor string
	select {
	case <-exited:
	case <-sctx.Done():
		killedFor = "deadline"
		killGroup(pgid)
		<-exited
	case <-out.over:
		killedFor = "output"
		killGroup(pgid)
		<-exited
	}
	// Whatever the script left behind in its group goes too.
	killGroup(pgid)
	drained := make(chan struct{})
	go func() {
		readers.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(pipeDrainTimeout):
		// A process that left the group holds a pipe open: stop reading.
		outR.Close()
		errR.Close()
		<-drained
	}
	elapsed := time.Since(start)
	stderrTail := tail.String()

	fail := func(code, msg string) (json.RawMessage, error) {
		if stderrTail != "" {
			msg += "; stderr: " + stderrTail
		}
		fields := []zap.Field{zap.String("error_code", code), zap.Duration("duration", elapsed)}
		if state := cmd.ProcessState; state != nil {
			fields = append(fields, zap.String("exit", state.String()))
		}
		c.logger.Debug("script failed", append(fields, zap.String("stderr", stderrTail))...)
		return nil, &rpc.TaskError{Code: code, Message: msg}
	}
	switch {
	case killedFor == "output" || out.exceeded():
		return fail(rpc.CodeOutputTooLarge, fmt.Sprintf("the script wrote more than %d bytes to stdout", rt.cfg.MaxOutputBytes))
	case killedFor == "deadline":
		if te := ctxTaskError(ctx); te != nil && te.Code == rpc.CodeCancelled {
			return fail(rpc.CodeCancelled, "the task was cancelled; the script was killed")
		}
		if errors.Is(context.Cause(sctx), errScriptTimeout) {
			return fail(rpc.CodeScriptTimeout, fmt.Sprintf("the script ran past its timeout of %s and was killed", ext.timeout))
		}
		return fail(rpc.CodeScriptTimeout, fmt.Sprintf("the script ran past the task's deadline (after %s) and was killed", elapsed.Round(time.Millisecond)))
	}
	var exitErr *exec.ExitError
	if errors.As(waitErr, &exitErr) {
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return fail(rpc.CodeScriptError, fmt.Sprintf("the script crashed: killed by signal %s", ws.Signal()))
		}
		return fail(rpc.CodeScriptError, fmt.Sprintf("the script exited with status %d", exitErr.ExitCode()))
	} else if waitErr != nil {
		return fail(rpc.CodeScriptError, fmt.Sprintf("waiting for the script: %v", waitErr))
	}
	data := bytes.TrimSpace(out.buf.Bytes())
	if len(data) == 0 {
		return fail(rpc.CodeScriptError, "the script wrote nothing to stdout; want a JSON value")
	}
	if !json.Valid(data) {
		return fail(rpc.CodeScriptError, fmt.Sprintf("the script's stdout is not JSON: %s", excerpt(data, 200)))
	}
	if stderrTail != "" {
		c.logger.Debug("script stderr", zap.String("stderr", stderrTail))
	}
	c.logger.Debug("script exited", zap.Duration("duration", elapsed))
	return data, nil
}

// killGroup sends SIGKILL to a process group; a group already gone is fine.
func killGroup(pgid int) {
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// paramsFile writes the parameters to an unlinked file in dir, open for reading.
func paramsFile(dir string, params []byte) (*os.File, error) {
	f, err := os.CreateTemp(dir, ".params-*.json")
	if err != nil {
		return nil, fmt.Errorf("writing the parameters: %w", err)
	}
	_ = os.Remove(f.Name())
	if _, err := f.Write(params); err != nil {
		f.Close()
		return nil, fmt.Errorf("writing the parameters: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("writing the parameters: %w", err)
	}
	return f, nil
}

// excerpt returns the start of b, marked when cut.
func excerpt(b []byte, n int) string {
	if len(b) <= n {
		return strconv.Quote(string(b))
	}
	return strconv.Quote(string(b[:n])) + "…"
}

// limitedBuffer keeps up to limit bytes; writing more closes over and fails.
type limitedBuffer struct {
	limit  int64
	buf    bytes.Buffer
	over   chan struct{}
	mu     sync.Mutex
	isOver bool
}

var errOutputLimit = errors.New("output limit reached")

// Write implements io.Writer.
func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if int64(l.buf.Len()+len(p)) > l.limit {
		if !l.isOver {
			l.isOver = true
			close(l.over)
		}
		return 0, errOutputLimit
	}
	return l.buf.Write(p)
}

func (l *limitedBuffer) exceeded() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.isOver
}

// tailBuffer keeps the last size bytes written to it.
type tailBuffer struct {
	size int
	mu   sync.Mutex
	buf  []byte
	cut  bool
}

// Write implements io.Writer.
func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*t.size {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.size:]...)
		t.cut = true
	}
	return len(p), nil
}

// String returns the tail, trimmed, as valid UTF-8.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buf
	cut := t.cut
	if len(b) > t.size {
		b, cut = b[len(b)-t.size:], true
	}
	s := strings.TrimSpace(strings.ToValidUTF8(string(b), ""))
	if cut && s != "" {
		s = "…" + s
	}
	return s
}

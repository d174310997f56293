package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scrapegate/scrapegate/rpc"
)

func TestScripts(t *testing.T) {
	rt := newRuntime(t, Config{ScriptsDir: testScriptsDir})
	byName := map[string]rpc.ScriptInfo{}
	var names []string
	for _, s := range rt.Scripts() {
		byName[s.Name] = s
		names = append(names, s.Name)
		if len(s.Versions) == 0 || !json.Valid(s.ParametersSchema) {
			t.Errorf("%s: versions %v, schema %s", s.Name, s.Versions, s.ParametersSchema)
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("not sorted: %v", names)
	}
	for _, b := range []string{EchoScript, HTTPFetchScript, HTMLExtractScript} {
		if s := byName[b]; !slices.Equal(s.Versions, []string{"1.0.0"}) || s.Description == "" {
			t.Errorf("built-in %s: %+v", b, s)
		}
	}
	greet := byName["greet"]
	if !slices.Equal(greet.Versions, []string{"1.0.0", "1.9.0", "1.10.0"}) || !strings.Contains(greet.Description, "newest") {
		t.Errorf("greet: %+v", greet)
	}
	for _, n := range []string{"sleeper", "flood", "badjson", "crash", "env"} {
		if _, ok := byName[n]; !ok {
			t.Errorf("%s missing from %v", n, names)
		}
	}
}

func TestEcho(t *testing.T) {
	rt := newRuntime(t, Config{})
	ctx := t.Context()
	t.Run("parameters back", func(t *testing.T) {
		data, te := runTask(ctx, t, rt, EchoScript, "", map[string]any{"a": []int{1, 2}, "b": "x"}, time.Second)
		if te != nil || string(data) != `{"a":[1,2],"b":"x"}` {
			t.Fatalf("got %s %v", data, te)
		}
	})
	t.Run("no parameters", func(t *testing.T) {
		data, te := runTask(ctx, t, rt, EchoScript, "1.0.0", nil, time.Second)
		if te != nil || string(data) != `{}` {
			t.Fatalf("got %s %v", data, te)
		}
	})
	t.Run("sleep", func(t *testing.T) {
		start := time.Now()
		mustOK(t)(runTask(ctx, t, rt, EchoScript, "", map[string]any{"sleep_ms": 100}, time.Second))
		if d := time.Since(start); d < 100*time.Millisecond {
			t.Fatalf("answered after %s", d)
		}
	})
	t.Run("sleep past the deadline", func(t *testing.T) {
		_, te := runTask(ctx, t, rt, EchoScript, "", map[string]any{"sleep_ms": 5000}, 100*time.Millisecond)
		mustFail(t, te, rpc.CodeScriptTimeout)
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(50*time.Millisecond, cancel)
		_, te := runTask(ctx, t, rt, EchoScript, "", map[string]any{"sleep_ms": 5000}, 5*time.Second)
		mustFail(t, te, rpc.CodeCancelled)
	})
	t.Run("bad sleep_ms", func(t *testing.T) {
		_, te := runTask(ctx, t, rt, EchoScript, "", map[string]any{"sleep_ms": "soon"}, time.Second)
		mustFail(t, te, rpc.CodeInvalidParameters, "/sleep_ms")
	})
	t.Run("parameters not an object", func(t *testing.T) {
		_, te := runTask(ctx, t, rt, EchoScript, "", []int{1}, time.Second)
		mustFail(t, te, rpc.CodeInvalidParameters, "object")
	})
	t.Run("unknown version", func(t *testing.T) {
		_, te := runTask(ctx, t, rt, EchoScript, "2.0.0", nil, time.Second)
		mustFail(t, te, rpc.CodeUnknownVersion, `no version "2.0.0"`, "versions: 1.0.0")
	})
	t.Run("unknown script", func(t *testing.T) {
		_, te := runTask(ctx, t, rt, "nope", "", nil, time.Second)
		mustFail(t, te, rpc.CodeUnknownVersion, `"nope"`)
	})
}

func TestBuiltinOutputLimit(t *testing.T) {
	rt := newRuntime(t, Config{MaxOutputBytes: 64})
	_, te := runTask(t.Context(), t, rt, EchoScript, "", map[string]any{"s": strings.Repeat("x", 100)}, time.Second)
	mustFail(t, te, rpc.CodeOutputTooLarge, "larger than 64 bytes")
}

func TestExternalHappyPath(t *testing.T) {
	rt := newRuntime(t, Config{ScriptsDir: testScriptsDir})
	m := mustOK(t)(runTask(t.Context(), t, rt, "greet", "1.0.0", map[string]any{"name": "Ada", "times": 2}, 10*time.Second))
	if m["greeting"] != "hello hello, Ada" || m["version"] != "1.0.0" || m["request_id"] != "req-TestExternalHappyPath" {
		t.Fatalf("got %v", m)
	}
}

func TestExternalVersions(t *testing.T) {
	rt := newRuntime(t, Config{ScriptsDir: testScriptsDir})
	for _, tc := range []struct{ ask, want string }{
		{"", "1.10.0"}, // semantic, not lexical, order
		{"1.9.0", "1.9.0"},
		{"1.10.0", "1.10.0"},
		{"1.0.0", "1.0.0"},
		{"1.0", "1.0.0"},
		{"v1.9.0", "1.9.0"},
	} {
		t.Run("ask "+tc.ask, func(t *testing.T) {
			m := mustOK(t)(runTask(t.Context(), t, rt, "greet", tc.ask, map[string]any{"name": "Bo"}, 10*time.Second))
			if m["version"] != tc.want {
				t.Fatalf("ran %v, want %s", m["version"], tc.want)
			}
		})
	}
	t.Run("unknown", func(t *testing.T) {
		_, te := runTask(t.Context(), t, rt, "greet", "3.0.0", map[string]any{"name": "Bo"}, time.Second)
		mustFail(t, te, rpc.CodeUnknownVersion, `"greet" has no version "3.0.0"`, "versions: 1.0.0, 1.9.0, 1.10.0")
	})
}

func TestExternalSchemaViolation(t *testing.T) {
	rt := newRuntime(t, Config{ScriptsDir: testScriptsDir})
	for _, tc := range []struct {
		params any
		want   []string
	}{
		{map[string]any{}, []string{"at /: missing property 'name'"}},
		{map[string]any{"name": 5}, []string{"at /name: got number, want string"}},
		{map[string]any{"name": "x", "times": 11, "extra": true}, []string{"at /times: maximum", "additional properties 'extra'"}},
	} {
		_, te := runTask(t.Context(), t, rt, "greet", "1.0.0", tc.params, 5*time.Second)
		mustFail(t, te, rpc.CodeInvalidParameters, tc.want...)
	}
	// The sleeper would sleep for five minutes had it been started.
	start := time.Now()
	_, te := runTask(t.Context(), t, rt, "sleeper", "", map[string]any{"seconds": 300}, 10*time.Second)
	mustFail(t, te, rpc.CodeInvalidParameters, "pid_file")
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %s: the script ran", d)
	}
}

// readPids waits for the sleeper's pid file: "<script pid> <child pid>".
func readPids(t *testing.T, path string) []int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil {
			var pids []int
			for _, f := range strings.Fields(string(b)) {
				pid, err := strconv.Atoi(f)
				if err != nil {
					t.Fatalf("pid file %q", b)
				}
				pids = append(pids, pid)
			}
			if len(pids) == 2 {
				return pids
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the script did not write its pid file")
	return nil
}

// assertGone fails unless every pid is gone (or a zombie nobody reaped yet:
// it no longer runs) within a second.
func assertGone(t *testing.T, pids []int) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for _, pid := range pids {
		for {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if err != nil {
				break // gone
			}
			// /proc/<pid>/stat: "pid (comm) state ..."
			if i := strings.LastIndexByte(string(b), ')'); i > 0 && len(b) > i+2 && (b[i+2] == 'Z' || b[i+2] == 'X') {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("process %d is still running: %s", pid, b)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func TestExternalDeadlineKillsProcessGroup(t *testing.T) {
	rt := newRuntime(t, Config{ScriptsDir: testScriptsDir})
	pidFile := filepath.Join(t.TempDir(), "pids")
	start := time.Now()
	_, te := runTask(t.Context(), t, rt, "sleeper", "", map[string]any{"pid_file": pidFile}, 700*time.Millisecond)
	mustFail(t, te, rpc.CodeScriptTimeout, "deadline", "killed", "stderr: sleeping 300s")
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %s", d)
	}
	pids := readPids(t, pidFile)
	assertGone(t, pids)
}

func TestExternalManifestTimeout(t *testing.T) {
	dir := t.TempDir()
	copyDir(t, filepath.Join(testScriptsDir, "sleeper"), filepath.Join(dir, "sleeper"))
	manifest := filepath.Join(dir, "sleeper", "1.0.0", ManifestFile)
	b, _ := os.ReadFile(manifest)
	_ = os.WriteFile(manifest, []byte(strings.Replace(string(b), `"timeout": 60`, `"timeout": "500ms"`, 1)), 0o644)

	rt := newRuntime(t, Config{ScriptsDir: dir})
	pidFile := filepath.Join(t.TempDir(), "pids")
	_, te := runTask(t.Context(), t, rt, "sleeper", "", map[string]any{"pid_file": pidFile}, 30*time.Second)
	mustFail(t, te, rpc.CodeScriptTimeout, "its timeout of 500ms")
	assertGone(t, readPids(t, pidFile))
}

func TestExternalCancelKillsProcessGroup(t *testing.T) {
	rt := newRuntime(t, Config{ScriptsDir: testScriptsDir})
	pidFile := filepath.Join(t.TempDir(), "pids")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan *rpc.TaskError, 1)
	go func() {
		_, te := runTask(ctx, t, rt, "sleeper", "", map[string]any{"pid_file": pidFile}, 30*time.Second)
		done <- te
	}()
	pids := readPids(t, pidFile)
	cancel()
	select {
	case te := <-done:
		mustFail(t, te, rpc.CodeCancelled, "killed")
	case <-time.After(5 * time.Second):
		t.Fatal("the cancelled script did not stop")
	}
	assertGone(t, pids)
}

func TestExternalHugeOutput(t *testing.T) {
	rt := newRuntime(t, Config{ScriptsDir: testScriptsDir, MaxOutputBytes: 1 << 20})
	start := time.Now()
	_, te := runTask(t.Context(), t, rt, "flood", "", nil, 30*time.Second)
	mustFail(t, te, rpc.CodeOutputTooLarge, "more than 1048576 bytes")
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %s", d)
	}
}

func TestExternalBadJSON(t *testing.T) {
	rt := newRuntime(t, Config{ScriptsDir: testScriptsDir})
	_, te := runTask(t.Context(), t, rt, "badjson", "", nil, 10*time.Second)
	mustFail(t, te, rpc.CodeScriptError, "not JSON", "price: {12.50")
}

func TestExternalCrash(t *testing.T) {
	rt := newRuntime(t, Config{ScriptsDir: testScriptsDir})
	_, te := runTask(t.Context(), t, rt, "crash", "", map[string]any{"mode": "signal"}, 10*time.Second)
	mustFail(t, te, rpc.CodeScriptError, "crashed", "segmentation fault", "something went wrong")
	_, te = runTask(t.Context(), t, rt, "crash", "", map[string]any{"mode": "exit"}, 10*time.Second)
	mustFail(t, te, rpc.CodeScriptError, "exited with status 3", "something went wrong: about to fail by exit")
}

func TestExternalStderrTail(t *testing.T) {
	dir := t.TempDir()
	writeScript(t, dir, "noisy", "1.0.0", `{"command": ["sh", "${SCRIPT_DIR}/run.sh"]}`,
		"i=0; while [ $i -lt 2000 ]; do echo \"line $i\" >&2; i=$((i+1)); done; echo 'the end' >&2; exit 1")
	rt := newRuntime(t, Config{ScriptsDir: dir, StderrTailBytes: 100})
	_, te := runTask(t.Context(), t, rt, "noisy", "", nil, 10*time.Second)
	mustFail(t, te, rpc.CodeScriptError, "exited with status 1", "line 1999\nthe end")
	if len(te.Message) > 200 || strings.Contains(te.Message, "line 1000") {
		t.Fatalf("message not cut to the tail: %q", te.Message)
	}
}

func TestExternalMinimalEnvironment(t *testing.T) {
	t.Setenv("SCRAPEGATE_TEST_SECRET", "hunter2")
	tmp := t.TempDir()
	rt := newRuntime(t, Config{ScriptsDir: testScriptsDir, TempDir: tmp})
	var out struct {
		Pwd       string   `json:"pwd"`
		Home      string   `json:"home"`
		Tmpdir    string   `json:"tmpdir"`
		ScriptDir string   `json:"script_dir"`
		RequestID string   `json:"request_id"`
		Vars      []string `json:"vars"`
	}
	data, te := runTask(t.Context(), t, rt, "env", "", nil, 10*time.Second)
	if te != nil {
		t.Fatal(te)
	}
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("%s: %v", data, err)
	}
	if filepath.Dir(out.Pwd) != tmp || out.Home != out.Pwd || out.Tmpdir != out.Pwd {
		t.Errorf("working dir %q, HOME %q, TMPDIR %q; want one fresh dir in %s", out.Pwd, out.Home, out.Tmpdir, tmp)
	}
	if out.RequestID != "req-TestExternalMinimalEnvironment" {
		t.Errorf("REQUEST_ID %q", out.RequestID)
	}
	if abs, _ := filepath.Abs(filepath.Join(testScriptsDir, "env", "1.0.0")); out.ScriptDir != abs {
		t.Errorf("SCRIPT_DIR %q, want %q", out.ScriptDir, abs)
	}
	allowed := []string{"PATH", "HOME", "TMPDIR", "SCRIPT_NAME", "SCRIPT_VERSION", "SCRIPT_DIR", "REQUEST_ID", "SCRIPT_DEADLINE_MS", "PWD", "SHLVL", "OLDPWD", "_"}
	for _, v := range out.Vars {
		if !slices.Contains(allowed, v) {
			t.Errorf("the script sees %s", v)
		}
	}
	if _, err := os.Stat(out.Pwd); !os.IsNotExist(err) {
		t.Errorf("working directory %s left behind: %v", out.Pwd, err)
	}
}

// TestExternalConcurrent runs scripts side by side.
func TestExternalConcurrent(t *testing.T) {
	rt := newRuntime(t, Config{ScriptsDir: testScriptsDir})
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range 8 {
		wg.Go(func() {
			_, te := runTask(t.Context(), t, rt, "greet", "1.9.0", map[string]any{"n": i}, 10*time.Second)
			if te != nil {
				failed.Add(1)
				t.Errorf("task %d: %v", i, te)
			}
		})
	}
	wg.Wait()
}

func TestRescan(t *testing.T) {
	dir := t.TempDir()
	copyDir(t, filepath.Join(testScriptsDir, "greet"), filepath.Join(dir, "greet"))
	// Entries to skip, each with a warning.
	writeScript(t, dir, "greet", "2.0.0", `{"command": ["sh", "run.sh"], "timout": 5}`, "echo 1")          // unknown field
	writeScript(t, dir, "greet", "not-a-version", `{"command": ["sh", "${SCRIPT_DIR}/run.sh"]}`, "echo 1") // bad version
	writeScript(t, dir, "greet", "1.10", `{"command": ["sh", "${SCRIPT_DIR}/run.sh"]}`, "echo 1")          // same as 1.10.0
	writeScript(t, dir, "bad name!", "1.0.0", `{"command": ["sh", "${SCRIPT_DIR}/run.sh"]}`, "echo 1")
	writeScript(t, dir, "echo", "1.0.0", `{"command": ["sh", "${SCRIPT_DIR}/run.sh"]}`, "echo 1")          // a built-in's name
	writeScript(t, dir, "nocmd", "1.0.0", `{"command": ["./missing.sh"]}`, "echo 1")                       // not there
	writeScript(t, dir, "nopath", "1.0.0", `{"command": ["no-such-interpreter-xyz", "run.sh"]}`, "echo 1") // not in PATH
	writeScript(t, dir, "badschema", "1.0.0", `{"command": ["sh", "${SCRIPT_DIR}/run.sh"], "parameters_schema": {"type": "nonsense"}}`, "echo 1")

	rt := newRuntime(t, Config{ScriptsDir: dir})
	var changes atomic.Int64
	rt.OnChange(func() { changes.Add(1) })
	if got := scriptVersions(rt); got != "echo@1.0.0 greet@1.0.0,1.9.0,1.10.0 html_extract@1.0.0 http_fetch@1.0.0" {
		t.Fatalf("scripts: %s", got)
	}
	if changed, err := rt.Rescan(); changed || err != nil || changes.Load() != 0 {
		t.Fatalf("rescan without change: %v %v, %d calls", changed, err, changes.Load())
	}

	writeScript(t, dir, "greet", "2.0.0", `{"command": ["sh", "${SCRIPT_DIR}/run.sh"], "description": "two"}`, `echo '{"v": 2}'`)
	writeScript(t, dir, "newbie", "0.1.0", `{"command": ["sh", "${SCRIPT_DIR}/run.sh"]}`, `echo '{"new": true}'`)
	if changed, err := rt.Rescan(); !changed || err != nil || changes.Load() != 1 {
		t.Fatalf("rescan with change: %v %v, %d calls", changed, err, changes.Load())
	}
	if got := scriptVersions(rt); got != "echo@1.0.0 greet@1.0.0,1.9.0,1.10.0,2.0.0 html_extract@1.0.0 http_fetch@1.0.0 newbie@0.1.0" {
		t.Fatalf("scripts: %s", got)
	}
	m := mustOK(t)(runTask(t.Context(), t, rt, "greet", "", nil, 10*time.Second))
	if m["v"] != 2.0 {
		t.Fatalf("newest greet gave %v", m)
	}

	if err := os.RemoveAll(filepath.Join(dir, "newbie")); err != nil {
		t.Fatal(err)
	}
	if changed, _ := rt.Rescan(); !changed || strings.Contains(scriptVersions(rt), "newbie") {
		t.Fatalf("removed script still served: %s", scriptVersions(rt))
	}
	_, te := runTask(t.Context(), t, rt, "newbie", "", nil, time.Second)
	mustFail(t, te, rpc.CodeUnknownVersion)

	// An unreadable directory keeps the scripts as they were.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Rescan(); err == nil || !strings.Contains(scriptVersions(rt), "greet") {
		t.Fatalf("rescan of a missing directory: %v, scripts %s", err, scriptVersions(rt))
	}
}

func TestWatch(t *testing.T) {
	dir := t.TempDir()
	rt := newRuntime(t, Config{ScriptsDir: dir, WatchDebounce: 50 * time.Millisecond})
	changed := make(chan struct{}, 10)
	rt.OnChange(func() { changed <- struct{}{} })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- rt.Watch(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
	}()
	time.Sleep(100 * time.Millisecond) // let the watch start

	wait := func(what string) {
		t.Helper()
		select {
		case <-changed:
		case <-time.After(5 * time.Second):
			t.Fatalf("no rescan after %s: %s", what, scriptVersions(rt))
		}
	}
	writeScript(t, dir, "late", "1.0.0", `{"command": ["sh", "${SCRIPT_DIR}/run.sh"], "description": "one"}`, `echo '{"late": 1}'`)
	wait("a new script")
	if !strings.Contains(scriptVersions(rt), "late@1.0.0") {
		t.Fatalf("scripts: %s", scriptVersions(rt))
	}
	writeScript(t, dir, "late", "1.1.0", `{"command": ["sh", "${SCRIPT_DIR}/run.sh"]}`, `echo '{"late": 2}'`)
	wait("a new version")
	// Editing a manifest in place counts too.
	if err := os.WriteFile(filepath.Join(dir, "late", "1.1.0", ManifestFile), []byte(`{"command": ["sh", "${SCRIPT_DIR}/run.sh"], "description": "edited"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	wait("an edited manifest")
	if s := rt.Scripts(); !slices.ContainsFunc(s, func(i rpc.ScriptInfo) bool { return i.Name == "late" && i.Description == "edited" }) {
		t.Fatalf("scripts: %+v", s)
	}
}

// scriptVersions renders Scripts() as "name@v1,v2 ...".
func scriptVersions(rt *Runtime) string {
	var parts []string
	for _, s := range rt.Scripts() {
		parts = append(parts, s.Name+"@"+strings.Join(s.Versions, ","))
	}
	return strings.Join(parts, " ")
}

// writeScript makes <dir>/<name>/<version>/ with a manifest and run.sh.
func writeScript(t *testing.T, dir, name, version, manifest, script string) {
	t.Helper()
	vdir := filepath.Join(dir, name, version)
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(vdir, "run.sh"), []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(vdir, ManifestFile), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
}

// copyDir copies a directory tree of small files.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		info, _ := d.Info()
		return os.WriteFile(filepath.Join(to, rel), b, info.Mode())
	})
	if err != nil {
		t.Fatal(err)
	}
}

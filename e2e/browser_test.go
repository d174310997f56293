package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chromiumPath is Debian's Chromium, which `make deps` (scripts/ensure-chromium.sh) installs.
const chromiumPath = "/usr/bin/chromium"

// browser is a headless Chromium tab that records what the page requested
// and every error it reported.
type browser struct {
	ctx context.Context
	t   *testing.T

	mu       sync.Mutex
	requests []string
	problems []string
	received float64 // bytes on the wire (encoded), all requests
}

// newBrowser starts a fresh headless Chromium (its own profile) and opens a
// tab. The flags keep it from any network but the gateway's: this machine
// refuses other connections, and a page must not need them anyway.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("%s is missing: run scripts/ensure-chromium.sh (make deps) as root", chromiumPath)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	b := &browser{t: t}
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithListener(b.record))
	t.Cleanup(cancel)
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(cancelTimeout)
	b.ctx = ctx
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return b
}

// record keeps the page's requests and errors; it runs in the tab's event
// loop, so it only appends.
func (b *browser) record(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		b.requests = append(b.requests, ev.Request.URL)
	case *network.EventLoadingFinished:
		b.received += ev.EncodedDataLength
	case *log.EventEntryAdded:
		if ev.Entry.Level == log.EntryLevelError {
			b.problems = append(b.problems, fmt.Sprintf("%s: %s (%s)", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
		}
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		text := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			text += " " + d.Exception.Description
		}
		b.problems = append(b.problems, "exception: "+text)
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError {
			var parts []string
			for _, a := range ev.Args {
				parts = append(parts, string(a.Value)+a.Description)
			}
			b.problems = append(b.problems, "console.error: "+strings.Join(parts, " "))
		}
	}
}

// do runs actions, failing the test with what went wrong.
func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v\npage problems: %v", what, err, b.problemList())
	}
}

// waitFor polls a JavaScript expression until it is truthy.
func (b *browser) waitFor(what, expr string, within time.Duration) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingTimeout(within), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		text, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText.slice(0, 3000) : ""`))
		b.t.Fatalf("waiting for %s: %v\npage problems: %v\npage text:\n%s", what, err, b.problemList(), text)
	}
}

// eval returns the value of a JavaScript expression.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// problemList returns the errors the page reported so far.
func (b *browser) problemList() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.problems...)
}

// checkClean fails the test if the page reported an error or requested
// anything outside origin (the gateway).
func (b *browser) checkClean(origin string) {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range b.requests {
		u, err := url.Parse(r)
		if err != nil || (u.Scheme != "data" && u.Host != origin) {
			b.t.Errorf("the page requested %s, outside the gateway %s", r, origin)
		}
	}
	for _, p := range b.problems {
		b.t.Errorf("the page reported: %s", p)
	}
	b.t.Logf("the page made %d requests, all to the gateway, %.0f KB on the wire", len(b.requests), b.received/1024)
}

// screenshot saves a PNG of the page (all of it when full, else what the
// window shows) as test-artifacts/<name>.png (repository root) and returns
// its path.
func (b *browser) screenshot(name string, full bool) string {
	b.t.Helper()
	shot := chromedp.CaptureScreenshot()
	if full {
		shot = chromedp.FullScreenshot(100)
	}
	png, err := chromedp.Run(b.ctx, shot)
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	dir := filepath.Join(repoRoot(), "test-artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s (%d bytes)", p, len(png))
	return p
}

// jsString quotes s for JavaScript.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestDocsBrowser opens /docs in a real headless Chromium: Swagger UI
// renders every operation of the document from the embedded assets, and a
// "try it" call of POST /scrape, with the token typed in the page's token
// field, returns the echo script's result.
func TestDocsBrowser(t *testing.T) {
	t.Parallel()
	g, _, _ := startDocsStack(t, true)
	doc, _ := loadOpenAPI(t, g)
	ops := 0
	for _, p := range doc.Paths.InMatchingOrder() {
		ops += len(doc.Paths.Value(p).Operations())
	}
	token := MintToken(t, GatewaySecret, "docs-browser", time.Hour, nil)

	b := newBrowser(t)
	b.do("opening /docs", chromedp.Navigate(g.URL+"/docs"))
	b.waitFor("the operations", `document.querySelectorAll(".opblock").length >= `+fmt.Sprint(ops), 30*time.Second)
	t.Logf("/docs rendered %d operations %.0f ms after navigation started", ops, eval[float64](b, `performance.now()`))
	if n := eval[int](b, `document.querySelectorAll(".opblock").length`); n != ops {
		t.Errorf("the page shows %d operations, the document has %d", n, ops)
	}
	for _, id := range []string{"operations-scrape-scrape", "operations-scrape-listScripts", "operations-live-streamStatus", "operations-system-getHealth"} {
		if !eval[bool](b, `!!document.getElementById(`+jsString(id)+`)`) {
			t.Errorf("no #%s", id)
		}
	}

	b.do("setting the token",
		chromedp.SendKeys(chromedp.ID("sg-token"), token),
		chromedp.Click(chromedp.ID("sg-token-use")),
	)
	b.waitFor("the token state", `document.getElementById("sg-token-state").textContent.includes("JWT")`, 5*time.Second)
	if stored := eval[string](b, `sessionStorage.getItem("scrapegate.token") || ""`); stored != token {
		t.Error("the token is not in the tab's session storage")
	}
	if eval[string](b, `localStorage.getItem("scrapegate.token") || ""`) != "" {
		t.Error("the token leaked into local storage")
	}

	const op = "#operations-scrape-scrape"
	b.do("trying POST /scrape",
		chromedp.Click(chromedp.CSS(op+" .opblock-summary-control")),
		chromedp.WaitVisible(chromedp.CSS(op+" .try-out__btn")),
		chromedp.Click(chromedp.CSS(op+" .try-out__btn")),
		chromedp.WaitVisible(chromedp.CSS(op+" textarea.body-param__text")),
	)
	body := eval[string](b, `document.querySelector("`+op+` textarea.body-param__text").value`)
	if !strings.Contains(body, `"script_name": "echo"`) {
		t.Fatalf("the example body is not an echo call:\n%s", body)
	}
	b.do("executing", chromedp.Click(chromedp.CSS(op+" .execute")))
	b.waitFor("the echo result", `(function () {
		var r = document.querySelector("`+op+` .live-responses-table .response");
		return r && r.textContent.includes('"status": "completed"');
	})()`, 30*time.Second)
	status := eval[string](b, `document.querySelector("`+op+` .live-responses-table .response .response-col_status").textContent.trim()`)
	result := eval[string](b, `document.querySelector("`+op+` .live-responses-table .response .response-col_description").textContent`)
	if status != "200" || !strings.Contains(result, `"url": "https://example.com"`) {
		t.Errorf("try it: status %q, body %s", status, result)
	}
	t.Logf("try it: POST /scrape answered %s", status)
	b.do("scrolling to the result", chromedp.Evaluate[chromedp.Void](`document.querySelector("`+op+` .live-responses-table").scrollIntoView({block: "center"})`))
	b.screenshot("docs", false)
	b.checkClean(strings.TrimPrefix(g.URL, "http://"))
}

// TestDashboardBrowser opens /dashboard in a real headless Chromium, signs
// in with a token, and checks that it connects over the WebSocket, shows
// the gateway and broker health and the live worker with its scripts, and
// shows a task's events after a POST /scrape of the same client.
func TestDashboardBrowser(t *testing.T) {
	t.Parallel()
	g, w, _ := startDocsStack(t, true)
	workerID := workerIDOf(t, w)
	token := MintToken(t, GatewaySecret, "dash-client", time.Hour, nil)

	b := newBrowser(t)
	b.do("opening /dashboard", chromedp.Navigate(g.URL+"/dashboard"))
	b.waitFor("the login form", `!document.getElementById("login").hidden`, 10*time.Second)
	// a token the gateway refuses: the page says so and forgets it
	b.do("signing in with a bad token",
		chromedp.SendKeys(chromedp.ID("token"), "not.a.token"),
		chromedp.Click(chromedp.ID("connect")),
	)
	b.waitFor("the refusal", `document.getElementById("login-error").textContent.includes("UNAUTHORIZED")`, 10*time.Second)
	if eval[string](b, `sessionStorage.getItem("scrapegate.token") || localStorage.getItem("scrapegate.token") || ""`) != "" {
		t.Error("a refused token stays in storage")
	}
	b.mu.Lock()
	b.problems = nil // the refused WebSocket/401 are expected here
	b.mu.Unlock()

	b.do("signing in",
		chromedp.SendKeys(chromedp.ID("token"), token),
		chromedp.Click(chromedp.ID("connect")),
	)
	b.waitFor("the live socket", `document.getElementById("conn").textContent === "Live"`, 20*time.Second)
	t.Logf("/dashboard live %.0f ms after navigation started (token typed in between)", eval[float64](b, `performance.now()`))
	b.waitFor("the client id", `document.getElementById("client-id").textContent === "dash-client"`, 10*time.Second)
	b.waitFor("the worker", `(function () {
		var row = document.querySelector('#workers tr[data-worker=`+jsString(workerID)+`]');
		return row && row.textContent.includes("echo") && row.textContent.includes("live");
	})()`, 20*time.Second)
	if s := eval[string](b, `document.getElementById("gw-status").textContent`); s != "ok" {
		t.Errorf("gateway status shows %q", s)
	}
	if s := eval[string](b, `document.getElementById("br-status").textContent`); s != "connected" {
		t.Errorf("broker status shows %q", s)
	}
	if eval[string](b, `sessionStorage.getItem("scrapegate.token") || ""`) != token || eval[string](b, `localStorage.getItem("scrapegate.token") || ""`) != "" {
		t.Error("the token is not (only) in the tab's session storage")
	}

	resp, body := PostJSON(t, g.URL+"/scrape", map[string]any{
		"script_name": "echo", "parameters": map[string]any{"sleep_ms": 300, "from": "browser test"}, "timeout": 30,
	}, Bearer(token))
	if resp.StatusCode != 200 {
		t.Fatalf("POST /scrape: %d %s", resp.StatusCode, body)
	}
	var result struct {
		RequestID string `json:"request_id"`
		Status    string `json:"status"`
	}
	if err := json.Unmarshal(body, &result); err != nil || result.Status != "completed" {
		t.Fatalf("POST /scrape: %s", body)
	}
	row := `document.querySelector('#tasks tr[data-request-id=` + jsString(result.RequestID) + `]')`
	b.waitFor("the task's events", `(function () {
		var r = `+row+`;
		return r && r.querySelector(".state").textContent.includes("completed") && r.querySelector(".events").textContent.includes("started");
	})()`, 20*time.Second)
	events := eval[string](b, row+`.querySelector(".events").textContent`)
	if events != "accepted → started → completed" {
		t.Errorf("task events shown: %q", events)
	}
	if txt := eval[string](b, row+`.textContent`); !strings.Contains(txt, "echo") || !strings.Contains(txt, workerID) {
		t.Errorf("task row: %q", txt)
	}
	t.Logf("task %s: %s", result.RequestID, events)

	// a few more calls over some seconds, for the chart (and the screenshot)
	for i := range 8 {
		resp, body := PostJSON(t, g.URL+"/scrape", map[string]any{
			"script_name": "echo", "parameters": map[string]any{"sleep_ms": 50 * (i%4 + 1)}, "timeout": 30,
		}, Bearer(token))
		if resp.StatusCode != 200 {
			t.Fatalf("POST /scrape %d: %d %s", i, resp.StatusCode, body)
		}
		time.Sleep(300 * time.Millisecond)
	}
	b.waitFor("the calls in the chart", `/Last 10 minutes: (9|\d\d+) calls/.test(document.getElementById("chart").getAttribute("aria-label"))`, 15*time.Second)
	b.waitFor("the tasks in the table", `document.querySelectorAll("#tasks tr[data-request-id]").length === 9`, 10*time.Second)
	t.Logf("chart: %s", eval[string](b, `document.getElementById("chart").getAttribute("aria-label")`))
	b.do("zooming the chart to a minute", chromedp.Click(chromedp.CSS(`.seg button[data-window="60"]`)))
	b.waitFor("the one-minute chart", `/^Last minute: 9 calls/.test(document.getElementById("chart").getAttribute("aria-label"))`, 5*time.Second)
	if n := eval[int](b, `document.querySelectorAll("#chart rect.calls").length`); n == 0 {
		t.Error("the chart draws no bar")
	}
	b.screenshot("dashboard", true)
	b.checkClean(strings.TrimPrefix(g.URL, "http://"))
}

// workerIDOf reads the worker's id from its "worker ready" log line.
func workerIDOf(t *testing.T, w *Worker) string {
	t.Helper()
	for _, line := range strings.Split(w.Logs(), "\n") {
		if !strings.Contains(line, "worker ready") {
			continue
		}
		var entry struct {
			WorkerID string `json:"worker_id"`
		}
		if i := strings.Index(line, "{"); i >= 0 && json.Unmarshal([]byte(line[i:]), &entry) == nil && entry.WorkerID != "" {
			return entry.WorkerID
		}
	}
	t.Fatalf("no worker id in the worker's log:\n%s", w.Logs())
	return ""
}

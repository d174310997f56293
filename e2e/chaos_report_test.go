package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/scrapegate/scrapegate/rpc"
)

// chaosReport is one run of the fault suite: what was done, what came back,
// and what the checks found.
type chaosReport struct {
	Profile     chaosProfile
	Start       time.Time
	LoadEnd     time.Time
	Faults      []faultRecord
	Calls       []*callRecord
	Events      []chaosEvent
	WorkerExits []workerExit
	Drain       drainResult
	Baseline    leakSample
	End         leakSample
	LeakErr     error
	// GatewayLog is the gateway's output (its access log names each
	// attempt of a call, see callHeader).
	GatewayLog string

	// filled by analyse
	violations  []violation
	lost, late  int
	ranAfter503 int
	// reloadResets counts first attempts whose connection a reload closed
	// (idle keep-alive connections, connections still in the old
	// listener's accept queue) before the gateway read them.
	reloadResets int
	// abandoned calls and what became of their tasks
	abandoned, abandonedSeen, abandonedStartedBefore, abandonedSkipped int
	// waitedForReconnect counts calls that timed out although their task
	// completed in time, because the gateway was still reconnecting after a
	// broker restart (its reply waited in the reply queue)
	waitedForReconnect int
	// links are the gateway's broker link ups and downs, from its log
	links linkEvents
	// reconnectStopped counts tasks whose caller left while workers were
	// reconnecting, that started after that and were stopped by their
	// cancel, published again on a heartbeat
	reconnectStopped int
	// outageStopped counts runs of tasks abandoned during a broker outage
	// that started again after the restart and were stopped by their cancel
	outageStopped int
}

// Violation classes, also the rows of the summary.
const (
	vStatus   = "unexpected answer"
	vSlow     = "answer later than timeout + 1 s"
	vReset    = "transport error (reset) on a call the client did not abandon"
	vLost     = "lost confirmed task"
	vLate     = "late execution"
	vRecovery = "no recovery within 10 s"
	vDrain    = "queues not drained within 10 s"
	vLeak     = "leak"
	vWorker   = "worker stop"
	vFault    = "fault injection failed"
)

type violation struct {
	Class string
	Phase string
	Text  string
}

func (r *chaosReport) violate(class, phase, format string, args ...any) {
	r.violations = append(r.violations, violation{Class: class, Phase: phase, Text: fmt.Sprintf(format, args...)})
}

// outcome is the label of a call's result in the table.
func (c *callRecord) outcome() string {
	switch {
	case !c.Disconnected.IsZero():
		return "abandoned by client"
	case c.Err != "":
		return "transport error"
	case c.ok():
		return "200"
	case c.Status == http.StatusOK && c.BodyState == "failed":
		return "200 failed " + c.Code
	case c.Status == http.StatusOK:
		return "200 wrong payload"
	case c.Code != "" && c.Kind == kindTimeout && c.Status == http.StatusGatewayTimeout:
		return "504 TIMEOUT (on purpose)"
	case c.Code != "":
		return fmt.Sprintf("%d %s", c.Status, c.Code)
	default:
		return fmt.Sprintf("%d (no error body)", c.Status)
	}
}

// allowed reports whether an answer is one the contract allows.
func (c *callRecord) allowed() bool {
	switch {
	case c.ok():
		return true
	case c.Status == http.StatusServiceUnavailable:
		return c.Code == "BROKER_UNAVAILABLE" || c.Code == "NO_WORKERS"
	case c.Status == http.StatusGatewayTimeout:
		return c.Code == "TIMEOUT"
	case c.Status == http.StatusOK && c.BodyState == "failed":
		// a call that sleeps past its timeout may see the worker's own
		// SCRIPT_TIMEOUT reply win the race with the gateway's timer
		return c.Kind == kindTimeout && c.Code == rpc.CodeScriptTimeout
	}
	return false
}

func (c *callRecord) describe() string {
	s := fmt.Sprintf("%s call (client %s, nonce %s, sleep %d ms, timeout %v) sent %s",
		c.Kind, c.Client, c.Nonce, c.SleepMS, c.Timeout, c.Sent.Format("15:04:05.000"))
	if c.RequestID != "" {
		s += ", request " + c.RequestID
	}
	return s
}

// analyse runs every check over the run's records.
func (r *chaosReport) analyse() {
	for _, f := range r.Faults {
		if f.Err != "" {
			r.violate(vFault, f.Name, "%s at %s: %s", f.Name, f.Start.Format("15:04:05.000"), f.Err)
		}
	}
	r.checkAnswers()
	r.checkEvents()
	r.checkRecovery()
	if !r.Drain.Drained {
		r.violate(vDrain, phaseCalm, "after %v: %v %s", r.Drain.Took.Round(time.Millisecond), r.Drain.Left, r.Drain.Err)
	}
	if r.LeakErr != nil {
		r.violate(vLeak, phaseCalm, "%v (baseline: %s; after: %s)", r.LeakErr, r.Baseline, r.End)
	}
	for _, e := range r.WorkerExits {
		switch {
		case !e.Exited:
			r.violate(vWorker, e.Fault, "worker pid %d did not exit within %v", e.Pid, e.Took.Round(time.Second))
		case e.Graceful && e.ExitErr != "":
			r.violate(vWorker, e.Fault, "worker pid %d stopped by SIGTERM exited with %s", e.Pid, e.ExitErr)
		}
	}
}

// checkAnswers: every call ends with an allowed answer, within its timeout
// plus one second, and never with a transport error it did not ask for.
func (r *chaosReport) checkAnswers() {
	var retried []string
	for _, c := range r.Calls {
		for _, a := range c.Retried {
			retried = append(retried, a.Attempt)
		}
	}
	read := attemptsInLog(r.GatewayLog, retried)
	for _, c := range r.Calls {
		for _, a := range c.Retried {
			switch {
			case read[a.Attempt]:
				r.violate(vReset, c.Phase, "%s: the gateway read attempt %s, then closed the connection without an answer: %s",
					c.describe(), a.Attempt, a.Err)
			case !r.duringReload(a.At):
				r.violate(vReset, c.Phase, "%s: attempt %s: the connection failed outside any reload: %s", c.describe(), a.Attempt, a.Err)
			default:
				r.reloadResets++
			}
		}
		if !c.Disconnected.IsZero() {
			continue
		}
		took := c.Ended.Sub(c.Sent)
		if took > c.Timeout+answerSlack {
			r.violate(vSlow, c.Phase, "%s: answered after %v", c.describe(), took.Round(time.Millisecond))
		}
		switch {
		case c.Err != "":
			r.violate(vReset, c.Phase, "%s: %s", c.describe(), c.Err)
		case !c.allowed():
			body := c.BadBody
			if len(body) > 300 {
				body = body[:300]
			}
			r.violate(vStatus, c.Phase, "%s: %s %s", c.describe(), c.outcome(), body)
		}
	}
}

// duringReload reports whether t falls in a reload fault (or the second
// after it).
func (r *chaosReport) duringReload(t time.Time) bool {
	for _, f := range r.Faults {
		if f.Name == faultReload && !t.Before(f.Start) && !t.After(f.End.Add(time.Second)) {
			return true
		}
	}
	return false
}

// attemptsInLog returns which of the call attempts (callHeader values) the
// gateway's access log shows, that is which requests the gateway read.
func attemptsInLog(log string, attempts []string) map[string]bool {
	found := make(map[string]bool)
	if len(attempts) == 0 {
		return found
	}
	want := make(map[string]bool, len(attempts))
	for _, a := range attempts {
		want[a] = true
	}
	key := `"` + callHeader + `":["`
	for rest := log; ; {
		i := strings.Index(rest, key)
		if i < 0 {
			return found
		}
		rest = rest[i+len(key):]
		if j := strings.IndexByte(rest, '"'); j >= 0 && want[rest[:j]] {
			found[rest[:j]] = true
		}
	}
}

// taskEvents is what the events say about one request id.
type taskEvents struct {
	first     time.Time
	started   []chaosEvent
	completed []chaosEvent
	// finished are the completed, failed and cancelled events (a task
	// that ran to an end on some worker)
	finished []chaosEvent
	// skipped: a worker skipped the task (task.expired, or task.cancelled
	// without a start)
	skipped bool
}

// checkEvents: no task starts after its caller's deadline or after its
// caller disconnected, and every task that completed in time answered its
// caller.
func (r *chaosReport) checkEvents() {
	r.links = gatewayLinkEvents(r.GatewayLog)
	byID := make(map[string]*taskEvents)
	byClient := make(map[string][]string) // client -> request ids, first seen order
	for _, e := range r.Events {
		te := byID[e.RequestID]
		if te == nil {
			te = &taskEvents{first: e.TS}
			byID[e.RequestID] = te
			byClient[e.ClientID] = append(byClient[e.ClientID], e.RequestID)
		}
		if e.TS.Before(te.first) {
			te.first = e.TS
		}
		switch e.Type {
		case rpc.EventStarted:
			te.started = append(te.started, e)
		case rpc.EventCompleted:
			te.completed = append(te.completed, e)
			te.finished = append(te.finished, e)
		case rpc.EventFailed:
			te.finished = append(te.finished, e)
		case rpc.EventCancelled:
			te.finished = append(te.finished, e)
			if len(te.started) == 0 {
				te.skipped = true
			}
		case rpc.EventExpired:
			te.skipped = true
		}
	}
	r.workerNotes(byID)
	r.outageNotes(byID)

	// calls whose request id the answer told
	for _, c := range r.Calls {
		if c.RequestID == "" {
			continue
		}
		te := byID[c.RequestID]
		if te == nil {
			continue
		}
		// the gateway's deadline for this call is at most `bound`
		var bound time.Time
		switch {
		case c.Status == http.StatusOK && !c.Stamp.IsZero():
			bound = c.Stamp.Add(c.Timeout + deadlineSlack)
		case c.Status == http.StatusGatewayTimeout && !c.Stamp.IsZero():
			bound = c.Stamp.Add(deadlineSlack)
		default:
			bound = c.Ended.Add(c.Timeout)
		}
		for _, s := range te.started {
			if s.TS.After(bound) {
				r.late++
				r.violate(vLate, c.Phase, "%s: started on %s at %s, after its deadline (%s at the latest)",
					c.describe(), s.WorkerID, s.TS.Format("15:04:05.000"), bound.Format("15:04:05.000"))
			}
		}
		if c.ok() {
			continue
		}
		for _, done := range te.completed {
			switch {
			case c.Status == http.StatusGatewayTimeout && done.TS.Before(c.Stamp.Add(-replySlack)) &&
				r.links.upAt(done.TS).After(c.Stamp.Add(-replySlack)):
				// the reply waited in the durable reply queue for the
				// gateway, which was still reconnecting at the deadline
				r.waitedForReconnect++
			case c.Status == http.StatusGatewayTimeout && done.TS.Before(c.Stamp.Add(-replySlack)):
				r.lost++
				r.violate(vLost, c.Phase, "%s: completed on %s at %s, yet the caller got %s at %s",
					c.describe(), done.WorkerID, done.TS.Format("15:04:05.000"), c.outcome(), c.Ended.Format("15:04:05.000"))
			case c.Status == http.StatusServiceUnavailable && c.Code == "NO_WORKERS":
				r.violate(vStatus, c.Phase, "%s: answered NO_WORKERS, yet its task ran on %s", c.describe(), done.WorkerID)
			case c.Status == http.StatusServiceUnavailable:
				// the link dropped before the gateway saw the confirm:
				// the contract allows it (at-least-once, caller told to retry)
				r.ranAfter503++
			}
			break
		}
	}

	// abandoned calls: their request ids are unknown to the client; each
	// disconnect client makes one call at a time, spaced past the previous
	// call's deadline, so a task maps to the last call sent before its
	// first event
	calls := make(map[string][]*callRecord)
	for _, c := range r.Calls {
		if !c.Disconnected.IsZero() {
			r.abandoned++
		}
		if c.Kind == kindDisconnect {
			calls[c.Client] = append(calls[c.Client], c)
		}
	}
	for client, cs := range calls {
		sort.Slice(cs, func(i, j int) bool { return cs[i].Sent.Before(cs[j].Sent) })
		tasks := make(map[*callRecord][]string)
		for _, id := range byClient[client] {
			te := byID[id]
			i := sort.Search(len(cs), func(i int) bool { return cs[i].Sent.After(te.first) }) - 1
			if i < 0 {
				continue
			}
			tasks[cs[i]] = append(tasks[cs[i]], id)
		}
		for c, ids := range tasks {
			if len(ids) > 1 {
				r.late++
				r.violate(vLate, c.Phase, "%s: tasks %v of client %s ran in this call's window: an earlier call's task ran after its deadline",
					c.describe(), ids, client)
			}
			if c.Disconnected.IsZero() {
				continue // answered: checked above by its request id
			}
			r.abandonedSeen++
			for _, id := range ids {
				te := byID[id]
				if len(te.started) > 0 && !te.started[0].TS.After(c.Disconnected) {
					r.abandonedStartedBefore++
				}
				if te.skipped {
					r.abandonedSkipped++
				}
				outage := r.outageOf(c.Client)
				for _, s := range byID[id].started {
					if !s.TS.After(c.Disconnected.Add(cancelSlack)) {
						continue
					}
					if outage != nil {
						// its caller left while the broker was down: the
						// cancel could only be published once the links were
						// back, so the redelivered task may start, but the
						// republished cancel must stop it
						if stop, ok := te.cancelledAfter(s.TS); ok && !stop.After(outage.End.Add(recoveryBound)) {
							r.outageStopped++
							continue
						}
						r.late++
						r.violate(vLate, c.Phase, "%s: abandoned at %s during the broker outage; task %s ran again on %s at %s and was not stopped by its cancel within 10 s of the restart",
							c.describe(), c.Disconnected.Format("15:04:05.000"), id, s.WorkerID, s.TS.Format("15:04:05.000"))
						continue
					}
					if r.duringReconnects(s.TS) {
						// workers were reconnecting: a cancel published then
						// reaches a worker only when the gateway publishes it
						// again, on the worker's heartbeat; it must stop the
						// task a moment after it started
						if stop, ok := te.cancelledAfter(s.TS); ok && !stop.After(s.TS.Add(reconnectCancelSlack)) {
							r.reconnectStopped++
							continue
						}
					}
					r.late++
					r.violate(vLate, c.Phase, "%s: abandoned at %s, yet task %s started on %s at %s",
						c.describe(), c.Disconnected.Format("15:04:05.000"), id, s.WorkerID, s.TS.Format("15:04:05.000"))
				}
			}
		}
	}
}

// linkEvents are the gateway's "broker link up" and "broker link down"
// log lines, in order.
type linkEvents []linkEvent

type linkEvent struct {
	at time.Time
	up bool
}

// gatewayLinkEvents reads the gateway's link events from its log.
func gatewayLinkEvents(log string) linkEvents {
	var evs linkEvents
	for _, line := range strings.Split(log, "\n") {
		up := strings.Contains(line, `"msg":"broker link up"`)
		if !up && !strings.Contains(line, `"msg":"broker link down`) {
			continue
		}
		var l struct {
			TS float64 `json:"ts"`
		}
		if json.Unmarshal([]byte(line), &l) != nil || l.TS == 0 {
			continue
		}
		sec := int64(l.TS)
		evs = append(evs, linkEvent{at: time.Unix(sec, int64((l.TS-float64(sec))*1e9)), up: up})
	}
	return evs
}

// upAt returns t if the gateway's link was up at t, or else when it came
// up next (the zero time if never).
func (evs linkEvents) upAt(t time.Time) time.Time {
	up := true // the link is up before its first event
	for _, e := range evs {
		if e.at.After(t) {
			if up {
				return t
			}
			if e.up {
				return e.at
			}
			continue
		}
		up = e.up
	}
	if up {
		return t
	}
	return time.Unix(1<<40, 0) // never
}

// duringReconnects reports whether t falls while the workers may be
// reconnecting: from the start of a broker restart or connection close
// until 10 s after it ended.
func (r *chaosReport) duringReconnects(t time.Time) bool {
	for _, f := range r.Faults {
		if (f.Name == faultBrokerRestart || f.Name == faultCloseConnections) &&
			!t.Before(f.Start) && !t.After(f.End.Add(recoveryBound)) {
			return true
		}
	}
	return false
}

// outageOf returns the broker restart during whose outage client
// abandoned its call, or nil.
func (r *chaosReport) outageOf(client string) *faultRecord {
	for i := range r.Faults {
		if containsString(r.Faults[i].OutageClients, client) {
			return &r.Faults[i]
		}
	}
	return nil
}

// cancelledAfter returns when the task was cancelled after at, if it was.
func (te *taskEvents) cancelledAfter(at time.Time) (time.Time, bool) {
	for _, e := range te.finished {
		if e.Type == rpc.EventCancelled && !e.TS.Before(at) {
			return e.TS, true
		}
	}
	return time.Time{}, false
}

// workerNotes tells, for each killed or stopped worker, how many tasks it
// had started and not finished when the signal came, and what became of them.
func (r *chaosReport) workerNotes(byID map[string]*taskEvents) {
	for i := range r.Faults {
		f := &r.Faults[i]
		if f.Pid == 0 {
			continue
		}
		// worker ids are <hostname>-<pid>-<random>
		mark := "-" + strconv.Itoa(f.Pid) + "-"
		inFlight, finishedThere, finishedElsewhere, skipped := 0, 0, 0, 0
		var elsewhere []string
		// tasks that an earlier fault interrupted on this worker (a lost
		// connection) are not its tasks at this signal
		var since time.Time
		if i > 0 {
			since = r.Faults[i-1].End
		}
		for id, te := range byID {
			var startedHere bool
			for _, s := range te.started {
				if strings.Contains(s.WorkerID, mark) && s.TS.Before(f.Start) && s.TS.After(since) {
					startedHere = true
				}
			}
			if !startedHere {
				continue
			}
			done := false
			for _, e := range te.finished {
				if strings.Contains(e.WorkerID, mark) && e.TS.Before(f.Start) {
					done = true
				}
			}
			if done {
				continue
			}
			inFlight++
			if te.skipped {
				skipped++
			}
			for _, e := range te.finished {
				if strings.Contains(e.WorkerID, mark) {
					finishedThere++
				} else {
					finishedElsewhere++
					if len(elsewhere) < 3 {
						elsewhere = append(elsewhere, id)
					}
				}
				break
			}
		}
		note := fmt.Sprintf("pid %d had %d tasks running; %d finished on it, %d on another worker (redelivered), %d redelivered past their deadline and skipped",
			f.Pid, inFlight, finishedThere, finishedElsewhere, skipped)
		if len(elsewhere) > 0 {
			note += fmt.Sprintf(" %v", elsewhere)
		}
		if f.Note != "" {
			note += "; " + f.Note
		}
		f.Note = note
	}
}

// outageNotes tells, for each broker restart, how many of the calls
// abandoned during the outage had their task running when the broker
// stopped (the ones whose cancel could not be published).
func (r *chaosReport) outageNotes(byID map[string]*taskEvents) {
	for i := range r.Faults {
		f := &r.Faults[i]
		if len(f.OutageClients) == 0 || f.StoppedAt.IsZero() {
			continue
		}
		running := 0
		for _, te := range byID {
			if len(te.started) == 0 || !containsString(f.OutageClients, te.started[0].ClientID) || !te.started[0].TS.Before(f.StoppedAt) {
				continue
			}
			done := false
			for _, e := range te.finished {
				if e.TS.Before(f.StoppedAt) {
					done = true
				}
			}
			if !done {
				running++
			}
		}
		f.Note = fmt.Sprintf("%d of %d calls abandoned during the outage had their task running when the broker stopped", running, len(f.OutageClients))
	}
}

// recoveryOf returns how long after end the ordinary calls succeeded again
// for good (every one sent from then until until succeeded), and whether
// they did at all.
func (r *chaosReport) recoveryOf(end, until time.Time) (time.Duration, bool) {
	lastFail := time.Time{}
	for _, c := range r.Calls {
		if c.Kind != kindNormal || c.Sent.Before(end) || !c.Sent.Before(until) {
			continue
		}
		if !c.ok() && c.Sent.After(lastFail) {
			lastFail = c.Sent
		}
	}
	if lastFail.IsZero() {
		return 0, true
	}
	var next time.Time
	for _, c := range r.Calls {
		if c.Kind == kindNormal && c.Sent.After(lastFail) && c.Sent.Before(until) && (next.IsZero() || c.Sent.Before(next)) {
			next = c.Sent
		}
	}
	if next.IsZero() {
		return lastFail.Sub(end), false
	}
	return next.Sub(end), true
}

// checkRecovery: after each fault, and after the last, calls succeed again
// within 10 s.
func (r *chaosReport) checkRecovery() {
	for i := range r.Faults {
		f := &r.Faults[i]
		until := r.LoadEnd
		if i+1 < len(r.Faults) {
			until = r.Faults[i+1].Start
		}
		f.Recovery, f.Recovered = r.recoveryOf(f.End, until)
		if !f.Recovered || f.Recovery > recoveryBound {
			r.violate(vRecovery, f.Name, "%s ended at %s: calls failed until %v later (recovered: %v)",
				f.Name, f.End.Format("15:04:05.000"), f.Recovery.Round(time.Millisecond), f.Recovered)
		}
	}
}

// phaseOrder is the order of the table's rows.
func phaseOrder() []string {
	return append(append([]string{phaseWarmup, phaseSteady}, allFaults...), phaseCalm)
}

// table renders the report as markdown: calls by outcome per fault, then
// the summary of the checks.
func (r *chaosReport) table() string {
	counts := make(map[string]map[string]int)
	violations := make(map[string]int)
	outcomes := make(map[string]bool)
	for _, c := range r.Calls {
		o := c.outcome()
		outcomes[o] = true
		if counts[c.Phase] == nil {
			counts[c.Phase] = make(map[string]int)
		}
		counts[c.Phase][o]++
		counts[c.Phase][""]++
	}
	for _, v := range r.violations {
		violations[v.Phase]++
	}
	cols := make([]string, 0, len(outcomes))
	for o := range outcomes {
		cols = append(cols, o)
	}
	slices.SortFunc(cols, func(a, b string) int {
		if (a == "200") != (b == "200") {
			if a == "200" {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	recovery := make(map[string][]time.Duration)
	unrecovered := make(map[string]int)
	for _, f := range r.Faults {
		recovery[f.Name] = append(recovery[f.Name], f.Recovery)
		if !f.Recovered {
			unrecovered[f.Name]++
		}
	}

	var sb strings.Builder
	dur := r.LoadEnd.Sub(r.Start)
	fmt.Fprintf(&sb, "Profile %s: %d calls in flight, %d workers, load for %v (after warm-up), %d calls in all.\n\n",
		r.Profile.Name, r.Profile.Concurrency, r.Profile.Workers, dur.Round(time.Second), len(r.Calls))
	sb.WriteString("| phase | times | calls | " + strings.Join(cols, " | ") + " | violations | recovery (max) |\n")
	sb.WriteString("|---|---:|---:|" + strings.Repeat("---:|", len(cols)) + "---:|---:|\n")
	total := make(map[string]int)
	for _, ph := range phaseOrder() {
		if counts[ph] == nil && recovery[ph] == nil {
			continue
		}
		times := "-"
		rec := "-"
		if ds := recovery[ph]; ds != nil {
			times = fmt.Sprint(len(ds))
			rec = fmt.Sprintf("%.1f s", slices.Max(ds).Seconds())
			if unrecovered[ph] > 0 {
				rec += fmt.Sprintf(" (%d never)", unrecovered[ph])
			}
		}
		fmt.Fprintf(&sb, "| %s | %s | %d |", ph, times, counts[ph][""])
		for _, o := range cols {
			fmt.Fprintf(&sb, " %d |", counts[ph][o])
			total[o] += counts[ph][o]
		}
		fmt.Fprintf(&sb, " %d | %s |\n", violations[ph], rec)
		total[""] += counts[ph][""]
	}
	fmt.Fprintf(&sb, "| **all** | | %d |", total[""])
	for _, o := range cols {
		fmt.Fprintf(&sb, " %d |", total[o])
	}
	fmt.Fprintf(&sb, " %d | |\n\n", len(r.violations))

	var maxRec time.Duration
	for _, f := range r.Faults {
		maxRec = max(maxRec, f.Recovery)
	}
	byClass := make(map[string]int)
	for _, v := range r.violations {
		byClass[v.Class]++
	}
	leak := fmt.Sprintf("goroutines %+d, gateway connections %+d, channels %+d, worker connections %+d, channels %+d",
		r.End.Goroutines-r.Baseline.Goroutines, r.End.GatewayConns-r.Baseline.GatewayConns,
		r.End.GatewayChannels-r.Baseline.GatewayChannels, r.End.WorkerConns-r.Baseline.WorkerConns,
		r.End.WorkerChannels-r.Baseline.WorkerChannels)
	sb.WriteString("| check | measured | target |\n|---|---|---|\n")
	fmt.Fprintf(&sb, "| answers other than 200 / 503 / 504 with the contract's code | %d | 0 |\n", byClass[vStatus])
	fmt.Fprintf(&sb, "| answers later than timeout + 1 s | %d | 0 |\n", byClass[vSlow])
	fmt.Fprintf(&sb, "| connection resets | %d | 0 |\n", byClass[vReset])
	fmt.Fprintf(&sb, "| requests whose connection a reload closed before the gateway read them (sent again; Caddy/net/http/SO_REUSEPORT behaviour) | %d | - |\n", r.reloadResets)
	fmt.Fprintf(&sb, "| lost confirmed tasks | %d | 0 |\n", r.lost)
	fmt.Fprintf(&sb, "| tasks completed in time whose reply waited in the reply queue while the gateway reconnected after a broker restart (caller got 504) | %d | - |\n", r.waitedForReconnect)
	fmt.Fprintf(&sb, "| late executions (after the deadline or the disconnect) | %d | 0 |\n", r.late)
	fmt.Fprintf(&sb, "| longest recovery after a fault | %.1f s | ≤ 10 s |\n", maxRec.Seconds())
	fmt.Fprintf(&sb, "| queues drained after the load | %.1f s (%v) | ≤ 10 s |\n", r.Drain.Took.Seconds(), r.Drain.Drained)
	fmt.Fprintf(&sb, "| leaks after the run | %s | 0 (goroutines ≤ +%d) |\n", leak, r.Profile.GoroutineSlack)
	fmt.Fprintf(&sb, "| tasks that ran though the caller got 503 BROKER_UNAVAILABLE (unconfirmed; allowed) | %d | - |\n", r.ranAfter503)
	fmt.Fprintf(&sb, "| task events seen | %d | - |\n", len(r.Events))
	fmt.Fprintf(&sb, "| calls abandoned by their client / their task seen by a worker / started before the disconnect / skipped (cancelled or expired) | %d / %d / %d / %d | - |\n",
		r.abandoned, r.abandonedSeen, r.abandonedStartedBefore, r.abandonedSkipped)
	fmt.Fprintf(&sb, "| tasks abandoned during a broker outage, run again after the restart and stopped by their republished cancel | %d | - |\n", r.outageStopped)
	fmt.Fprintf(&sb, "| tasks abandoned while workers reconnected, started by a worker back from it and stopped by their republished cancel | %d | - |\n", r.reconnectStopped)
	for _, f := range r.Faults {
		if f.Note != "" {
			fmt.Fprintf(&sb, "\n- %s at %s: %s", f.Name, f.Start.Format("15:04:05"), f.Note)
		}
	}
	sb.WriteString("\n")
	return sb.String()
}

// violationLines returns at most n lines per class describing violations.
func (r *chaosReport) violationLines(n int) []string {
	per := make(map[string]int)
	var lines []string
	for _, v := range r.violations {
		per[v.Class]++
		if per[v.Class] <= n {
			lines = append(lines, fmt.Sprintf("%s [%s]: %s", v.Class, v.Phase, v.Text))
		}
	}
	for class, k := range per {
		if k > n {
			lines = append(lines, fmt.Sprintf("%s: %d more", class, k-n))
		}
	}
	return lines
}

// dump writes the run's records to dir: the gateway's and the workers'
// output, every event and every call (JSON lines), and the table.
func (r *chaosReport) dump(dir string, g *Gateway, ws *workerSet) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files := map[string]string{
		"gateway.log": g.Logs(),
		"table.md":    r.table(),
	}
	ws.mu.Lock()
	for _, w := range ws.all {
		files[fmt.Sprintf("worker-%d.log", w.Pid())] = w.Logs()
	}
	ws.mu.Unlock()
	var sb strings.Builder
	enc := json.NewEncoder(&sb)
	for _, e := range r.Events {
		_ = enc.Encode(e)
	}
	files["events.jsonl"] = sb.String()
	sb.Reset()
	for _, c := range r.Calls {
		_ = enc.Encode(c)
	}
	files["calls.jsonl"] = sb.String()
	sb.Reset()
	for _, f := range r.Faults {
		_ = enc.Encode(f)
	}
	files["faults.jsonl"] = sb.String()
	sb.Reset()
	for _, v := range r.violations {
		_ = enc.Encode(v)
	}
	files["violations.jsonl"] = sb.String()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// loadDump reads the records dump wrote to dir back into a report, to run
// the checks again (SCRAPEGATE_CHAOS_REANALYSE=<dir>, for developing them).
func loadDump(dir string, p chaosProfile) (*chaosReport, error) {
	r := &chaosReport{Profile: p, Drain: drainResult{Drained: true}}
	log, err := os.ReadFile(filepath.Join(dir, "gateway.log"))
	if err != nil {
		return nil, err
	}
	r.GatewayLog = string(log)
	lines := func(name string, each func([]byte) error) error {
		raw, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		for _, l := range bytes.Split(raw, []byte("\n")) {
			if len(bytes.TrimSpace(l)) == 0 {
				continue
			}
			if err := each(l); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		return nil
	}
	if err := lines("calls.jsonl", func(l []byte) error {
		c := new(callRecord)
		r.Calls = append(r.Calls, c)
		return json.Unmarshal(l, c)
	}); err != nil {
		return nil, err
	}
	if err := lines("events.jsonl", func(l []byte) error {
		var e chaosEvent
		r.Events = append(r.Events, e)
		return json.Unmarshal(l, &r.Events[len(r.Events)-1])
	}); err != nil {
		return nil, err
	}
	if err := lines("faults.jsonl", func(l []byte) error {
		var f faultRecord
		if err := json.Unmarshal(l, &f); err != nil {
			return err
		}
		r.Faults = append(r.Faults, f)
		return nil
	}); err != nil {
		return nil, err
	}
	for _, c := range r.Calls {
		if r.Start.IsZero() || (c.Phase == phaseSteady && c.Sent.Before(r.Start)) {
			r.Start = c.Sent
		}
		if c.Ended.After(r.LoadEnd) {
			r.LoadEnd = c.Ended
		}
	}
	return r, nil
}

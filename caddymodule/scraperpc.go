package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/scrapegate/scrapegate/internal/jsonraw"
	"github.com/scrapegate/scrapegate/rpc"
)

func init() {
	caddy.RegisterModule(new(ScrapeRPC))
}

// Defaults and limits of scrape_rpc.
const (
	// DefaultMaxBody is the default limit of a request body: 1 MiB.
	DefaultMaxBody = 1 << 20
	// DefaultTimeout is the call timeout when the request gives none.
	DefaultTimeout = 300 * time.Second
	// DefaultMaxTimeout is the largest timeout a request may ask for.
	DefaultMaxTimeout = 3600 * time.Second
	// AnonymousClient is the client id of a request no authentication
	// handler identified.
	AnonymousClient = "anonymous"
	// maxScriptName and maxScriptVersion bound the lengths of the fields.
	maxScriptName    = 128
	maxScriptVersion = 64
)

// OutcomeFailed is the outcome of a call whose script ran and failed
// ("completed" of one that completed); any other outcome is the catalogue
// code of the request's error.
const OutcomeFailed = "failed"

// ScrapeRPC is the `scrape_rpc` handler: it answers POST /scrape
// synchronously by running the requested script on a worker through the
// scrapegate app's broker link (see ../shared/design/http-api.md). It
// decodes and validates the request strictly, sends the task with the
// request's id as its correlation id and the authenticated client id
// ({http.auth.user.id}, "anonymous" when empty), waits for the reply bounded
// by the request's timeout and by the client's connection (a client that
// goes away cancels its task), and writes the 200 result. Every failure is
// returned as a caddyhttp.HandlerError carrying a *CodedError, for the
// `scrape_error` handler of handle_errors to render. Each request is logged
// once at info level.
//
// Placeholders it sets, for logs and later handlers:
//
// Placeholder | Description
// ------------|-------------
// `{http.scrape_rpc.request_id}` | the request id (= `{http.request.uuid}`, the task's correlation id)
// `{http.scrape_rpc.client_id}` | the client id the task carries
// `{http.scrape_rpc.script}` | the script name, when the body named a valid one
// `{http.scrape_rpc.outcome}` | `completed`, `failed`, or the error code of the request
// `{http.scrape_rpc.error_code}` | the error code (the request's, or the worker's when the script failed); empty on success
// `{http.scrape_rpc.worker_id}` | the worker that replied
// `{http.scrape_rpc.duration_ms}` | the time from the request to the answer, in milliseconds
type ScrapeRPC struct {
	// The largest request body accepted, in bytes; a larger one is a 413
	// BODY_TOO_LARGE. Default: 1 MiB (1048576).
	MaxBody int64 `json:"max_body,omitempty"`

	// The call timeout when the request has no `timeout` field. Default: 300s.
	DefaultTimeout caddy.Duration `json:"default_timeout,omitempty"`

	// The largest `timeout` a request may ask for; a larger one is a 422
	// VALIDATION_ERROR. Whole seconds. Default: 3600s.
	MaxTimeout caddy.Duration `json:"max_timeout,omitempty"`

	app    *App
	caller caller
	stats  *callStats
	logger *zap.Logger
}

// caller makes calls to workers: *rpc.Client, or a fake in unit tests.
type caller interface {
	Call(ctx context.Context, t rpc.Task) (rpc.Reply, error)
}

// CaddyModule returns the Caddy module information.
func (*ScrapeRPC) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.scrape_rpc",
		New: func() caddy.Module { return new(ScrapeRPC) },
	}
}

// Provision fills in the defaults and gets the broker link from the
// scrapegate app (provisioned with its defaults when the config has none).
func (h *ScrapeRPC) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if h.MaxBody == 0 {
		h.MaxBody = DefaultMaxBody
	}
	if h.DefaultTimeout == 0 {
		h.DefaultTimeout = caddy.Duration(DefaultTimeout)
	}
	if h.MaxTimeout == 0 {
		h.MaxTimeout = caddy.Duration(DefaultMaxTimeout)
	}
	appVal, err := ctx.App(AppID)
	if err != nil {
		return fmt.Errorf("loading scrapegate app: %v", err)
	}
	h.app = appVal.(*App)
	h.caller = h.app.Client()
	h.stats = h.app.Stats()
	return nil
}

// Validate checks the configuration.
func (h *ScrapeRPC) Validate() error {
	if h.MaxBody < 0 {
		return fmt.Errorf("max_body: must not be negative")
	}
	maxT := time.Duration(h.MaxTimeout)
	if maxT < time.Second || maxT%time.Second != 0 {
		return fmt.Errorf("max_timeout: must be a whole number of seconds, at least 1s")
	}
	defT := time.Duration(h.DefaultTimeout)
	if defT < time.Second || defT%time.Second != 0 || defT > maxT {
		return fmt.Errorf("default_timeout: must be a whole number of seconds between 1s and max_timeout")
	}
	return nil
}

// ServeHTTP handles one POST /scrape. It never calls next.
func (h *ScrapeRPC) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	start := time.Now()
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	reqID, _ := repl.GetString("http.request.uuid")
	clientID, _ := repl.GetString("http.auth.user.id")
	if clientID == "" {
		clientID = AnonymousClient
	}

	c := &call{requestID: reqID, clientID: clientID, start: start}
	err := h.serve(w, r, c)
	h.finish(r.Context(), repl, c, err)
	return err
}

// call is what one request learns on its way, for its log line and
// placeholders.
type call struct {
	requestID string
	clientID  string
	script    string // set once the name is valid
	outcome   string
	errorCode string
	workerID  string
	start     time.Time
	duration  time.Duration
	err       error // the internal cause of a failure, for the log
}

// placeholderPrefix is the namespace of the placeholders scrape_rpc sets.
const placeholderPrefix = "http.scrape_rpc."

// placeholder resolves the {http.scrape_rpc.*} placeholders of the call. It
// is registered with the request's replacer once the call is over: one
// provider resolved on demand costs less than setting every value.
func (c *call) placeholder(key string) (any, bool) {
	name, ok := strings.CutPrefix(key, placeholderPrefix)
	if !ok {
		return nil, false
	}
	switch name {
	case "request_id":
		return c.requestID, true
	case "client_id":
		return c.clientID, true
	case "script":
		return c.script, true
	case "outcome":
		return c.outcome, true
	case "error_code":
		return c.errorCode, true
	case "worker_id":
		return c.workerID, true
	case "duration_ms":
		return c.duration.Milliseconds(), true
	}
	return nil, false
}

// serve does the work of ServeHTTP; its error is the handler's.
func (h *ScrapeRPC) serve(w http.ResponseWriter, r *http.Request, c *call) error {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return Error(CodeMethodNotAllowed, "use POST", nil)
	}
	if err := checkContentType(r.Header.Get("Content-Type")); err != nil {
		return err
	}
	body, err := readBody(w, r, h.MaxBody)
	if body != nil {
		defer putBuffer(body)
	}
	if err != nil {
		return err
	}
	req, err := decodeScrapeRequest(body.Bytes(), time.Duration(h.DefaultTimeout), time.Duration(h.MaxTimeout))
	if err != nil {
		return err
	}
	c.script = req.scriptName

	ctx, cancel := context.WithTimeout(r.Context(), req.timeout)
	defer cancel()
	reply, err := h.caller.Call(ctx, rpc.Task{
		RequestID:     c.requestID,
		ScriptName:    req.scriptName,
		ScriptVersion: req.scriptVersion,
		Parameters:    req.parameters,
		Timeout:       int(req.timeout / time.Second),
		ClientID:      c.clientID,
		CreatedAt:     c.start.UTC(),
	})
	c.workerID = reply.WorkerID
	if err != nil {
		var te *rpc.TaskError
		if !errors.As(err, &te) {
			return callError(err, r.Context().Err() != nil, req.timeout)
		}
		if herr := taskError(te); herr != nil {
			return herr
		}
		// the script ran and failed: a 200 with status failed
	}
	return writeResult(w, c, &reply)
}

// finish logs the request, records it in the stats and sets the
// placeholders.
func (h *ScrapeRPC) finish(ctx context.Context, repl *caddy.Replacer, c *call, err error) {
	d := time.Since(c.start)
	if err != nil {
		if ce, ok := codeOf(err); ok {
			c.outcome, c.errorCode = ce.Code, ce.Code
			c.err = ce.Err
		} else {
			c.outcome, c.errorCode, c.err = CodeInternalError, CodeInternalError, err
		}
	}
	// callStats files client-chosen names (UNKNOWN_SCRIPT) under a pseudo
	// name itself, so its tables stay bounded
	h.stats.Record(c.script, c.outcome, d)

	c.duration = d
	repl.Map(c.placeholder)

	if ce := h.logger.Check(zapcore.InfoLevel, "scrape call"); ce != nil {
		status := http.StatusOK
		if err != nil {
			status = http.StatusInternalServerError
			if e, ok := Catalogue[c.errorCode]; ok {
				status = e.Status
			}
		}
		clientIP, _ := caddyhttp.GetVar(ctx, caddyhttp.ClientIPVarKey).(string)
		fp := fieldsPool.Get().(*[]zap.Field)
		fields := append((*fp)[:0],
			zap.String("request_id", c.requestID),
			zap.String("client_id", c.clientID),
			zap.String("client_ip", clientIP),
			zap.String("script", c.script),
			zap.String("outcome", c.outcome),
			zap.Int("status", status),
			zap.Duration("duration", d),
		)
		if c.errorCode != "" && c.errorCode != c.outcome {
			fields = append(fields, zap.String("error_code", c.errorCode))
		}
		if c.workerID != "" {
			fields = append(fields, zap.String("worker_id", c.workerID))
		}
		if c.err != nil {
			fields = append(fields, zap.Error(c.err))
		}
		ce.Write(fields...)
		clear(fields) // drop the references to this call's values
		*fp = fields[:0]
		fieldsPool.Put(fp)
	}
}

// fieldsPool recycles the fields of the per-call log line: the cores
// encode them during Write and keep no reference.
var fieldsPool = sync.Pool{New: func() any {
	f := make([]zap.Field, 0, 12)
	return &f
}}

// callError maps a failed call (anything but a worker's failed reply) to the
// handler error: the one table of RPC failures, in the manner of
// reverseproxy's statusError. clientGone tells that the HTTP client went
// away (the call was cancelled for that reason).
func callError(err error, clientGone bool, timeout time.Duration) error {
	switch {
	case errors.Is(err, rpc.ErrUnknownScript):
		return Error(CodeUnknownScript, "no worker queue is bound for this script", nil)
	case errors.Is(err, rpc.ErrNoWorkers):
		return Error(CodeNoWorkers, "no live worker serves this script", nil)
	case clientGone || errors.Is(err, rpc.ErrCanceled):
		return Error(CodeClientClosedRequest, "the client closed the connection", err)
	case errors.Is(err, rpc.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return Error(CodeTimeout, "no reply within "+strconv.Itoa(int(timeout/time.Second))+" s", nil)
	case errors.Is(err, rpc.ErrBrokerUnavailable), errors.Is(err, rpc.ErrNacked), errors.Is(err, rpc.ErrClosed):
		return Error(CodeBrokerUnavailable, "the broker did not accept the task", err)
	default:
		return Error(CodeInternalError, "", fmt.Errorf("calling worker: %w", err))
	}
}

// requestErrorCodes are the worker error codes that are errors of the
// request rather than of the script: the one table from a worker's
// error_code to an error response. Every other code is a 200 with status
// failed.
var requestErrorCodes = map[string]string{
	rpc.CodeUnknownVersion:    CodeUnknownVersion,
	rpc.CodeInvalidParameters: CodeInvalidParameters,
}

// taskError returns the handler error of a worker's failed reply when its
// code is an error of the request, or nil when the reply is a result.
func taskError(te *rpc.TaskError) error {
	code, ok := requestErrorCodes[te.Code]
	if !ok {
		return nil
	}
	// the worker's message says what is wrong with the request (which
	// version exists, which parameter fails the schema): safe to show
	return Error(code, te.Message, nil)
}

// writeResult writes the 200 answer of a call whose script ran: the
// ScrapeResponse, encoded by appendResult.
func writeResult(w http.ResponseWriter, c *call, reply *rpc.Reply) error {
	c.outcome = string(rpc.StatusCompleted)
	if reply.Status == rpc.StatusFailed {
		c.outcome, c.errorCode = OutcomeFailed, reply.Code()
	}
	bp := slicePool.Get().(*[]byte)
	b := appendResult((*bp)[:0], c.requestID, c.start, reply)
	hdr := w.Header()
	hdr["Content-Type"] = jsonContentType
	hdr["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
	if cap(b) <= 64<<10 {
		*bp = b
		slicePool.Put(bp)
	}
	return nil
}

// slicePool recycles the buffers results are encoded in.
var slicePool = sync.Pool{New: func() any {
	b := make([]byte, 0, 1024)
	return &b
}}

// jsonContentType is the Content-Type of every JSON answer (shared, never
// modified).
var jsonContentType = []string{"application/json; charset=utf-8"}

// appendResult appends the JSON of the ScrapeResponse of reply to b, as
// encoding/json would encode it (with a trailing newline), without its
// reflection: this is the hot path of every call. reply.Data is valid JSON
// (the rpc client decoded the reply with encoding/json) and is copied as it
// is, compacted, without encoding/json's HTML escaping; an empty one is null.
func appendResult(b []byte, requestID string, created time.Time, reply *rpc.Reply) []byte {
	b = append(b, `{"request_id":`...)
	b = jsonraw.AppendString(b, requestID)
	if reply.Status == rpc.StatusFailed {
		b = append(b, `,"status":"failed","data":`...)
	} else {
		b = append(b, `,"status":"completed","data":`...)
	}
	if len(reply.Data) == 0 {
		b = append(b, "null"...)
	} else {
		b = jsonraw.AppendCompact(b, reply.Data)
	}
	if reply.Status == rpc.StatusFailed {
		msg := ""
		if reply.Error != nil {
			msg = *reply.Error
		}
		b = append(b, `,"error":`...)
		b = jsonraw.AppendString(b, msg)
		b = append(b, `,"error_code":`...)
		b = jsonraw.AppendString(b, reply.Code())
	} else {
		b = append(b, `,"error":null,"error_code":null`...)
	}
	b = append(b, `,"execution_time":`...)
	b = jsonraw.AppendFloat(b, reply.ExecutionTime)
	b = append(b, `,"created_at":"`...)
	b = created.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","completed_at":"`...)
	completed := reply.CompletedAt
	if completed.IsZero() {
		completed = time.Now()
	}
	b = completed.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, "\"}\n"...)
}

// checkContentType accepts application/json (any parameters, a utf-8
// charset if one is given).
func checkContentType(ct string) error {
	if ct == "application/json" {
		return nil
	}
	if ct == "" {
		return Error(CodeUnsupportedMediaType, "Content-Type must be application/json", nil)
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return Error(CodeUnsupportedMediaType, "Content-Type must be application/json", nil)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return Error(CodeUnsupportedMediaType, "the charset must be utf-8", nil)
	}
	return nil
}

// bufferPool recycles request and response buffers.
var bufferPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// getBuffer returns an empty buffer from the pool.
func getBuffer() *bytes.Buffer { return bufferPool.Get().(*bytes.Buffer) }

// putBuffer returns buf to the pool unless it grew large.
func putBuffer(buf *bytes.Buffer) {
	if buf.Cap() > 64<<10 {
		return
	}
	buf.Reset()
	bufferPool.Put(buf)
}

// readBody reads the whole body, at most limit bytes, into a pooled buffer
// (returned even on error, for the caller to put back).
func readBody(w http.ResponseWriter, r *http.Request, limit int64) (*bytes.Buffer, error) {
	if r.ContentLength > limit {
		return nil, Error(CodeBodyTooLarge, "the body is larger than "+strconv.FormatInt(limit, 10)+" bytes", nil)
	}
	buf := getBuffer()
	if r.Body == nil {
		return buf, nil
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return buf, Error(CodeBodyTooLarge, "the body is larger than "+strconv.FormatInt(limit, 10)+" bytes", nil)
		}
		if r.Context().Err() != nil {
			return buf, Error(CodeClientClosedRequest, "the client closed the connection", fmt.Errorf("reading request body: %w", err))
		}
		return buf, Error(CodeMalformedJSON, "the body could not be read", fmt.Errorf("reading request body: %w", err))
	}
	return buf, nil
}

// scrapeRequest is a decoded and validated POST /scrape body.
type scrapeRequest struct {
	scriptName    string
	scriptVersion *string
	parameters    json.RawMessage
	timeout       time.Duration
}

// decodeScrapeRequest decodes body strictly and validates every field: a
// body that is not JSON is MALFORMED_JSON; anything else wrong is one
// VALIDATION_ERROR whose detail names each bad field ("field: problem",
// joined by "; "), unknown fields first. Field names match exactly (unlike
// encoding/json's case-insensitive matching). The raw values it returns
// (parameters) alias body.
func decodeScrapeRequest(body []byte, defTimeout, maxTimeout time.Duration) (scrapeRequest, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return scrapeRequest{}, Error(CodeMalformedJSON, "the body is empty", nil)
	}
	if !json.Valid(body) {
		var v any
		var se *json.SyntaxError
		if err := json.Unmarshal(body, &v); errors.As(err, &se) {
			return scrapeRequest{}, Error(CodeMalformedJSON, se.Error()+" (offset "+strconv.FormatInt(se.Offset, 10)+")", nil)
		}
		return scrapeRequest{}, Error(CodeMalformedJSON, "the body is not JSON", nil)
	}

	var (
		scriptName, scriptVersion, parameters, timeout []byte
		problems                                       []string
	)
	isObject := jsonraw.ScanObject(body, func(key, raw []byte) {
		switch string(key) {
		case "script_name":
			scriptName = raw
		case "script_version":
			scriptVersion = raw
		case "parameters":
			parameters = raw
		case "timeout":
			timeout = raw
		default:
			problems = append(problems, "unknown field "+strconv.Quote(string(key)))
		}
	})
	if !isObject {
		return scrapeRequest{}, Error(CodeValidationError, "body: must be a JSON object", nil)
	}
	slices.Sort(problems)
	problems = slices.Compact(problems)

	req := scrapeRequest{timeout: defTimeout, parameters: json.RawMessage("{}")}
	bad := func(field, problem string) { problems = append(problems, field+": "+problem) }

	// script_name
	if scriptName == nil || jsonraw.IsNull(scriptName) {
		bad("script_name", "required")
	} else if s, ok := jsonraw.String(scriptName); !ok {
		bad("script_name", "must be a string")
	} else if p := scriptNameProblem(s); p != "" {
		bad("script_name", p)
	} else {
		req.scriptName = s
	}

	// script_version
	if scriptVersion != nil && !jsonraw.IsNull(scriptVersion) {
		if s, ok := jsonraw.String(scriptVersion); !ok {
			bad("script_version", "must be a string or null")
		} else if s == "" || len(s) > maxScriptVersion {
			bad("script_version", "must be 1 to "+strconv.Itoa(maxScriptVersion)+" characters")
		} else {
			req.scriptVersion = &s
		}
	}

	// parameters
	if parameters != nil && !jsonraw.IsNull(parameters) {
		if parameters[0] != '{' {
			bad("parameters", "must be an object")
		} else {
			req.parameters = parameters
		}
	}

	// timeout
	if timeout != nil && !jsonraw.IsNull(timeout) {
		maxS := float64(maxTimeout / time.Second)
		f, err := strconv.ParseFloat(string(timeout), 64)
		switch {
		case !jsonraw.IsNumber(timeout) || (err != nil && !errors.Is(err, strconv.ErrRange)) || f != math.Trunc(f):
			bad("timeout", "must be an integer number of seconds")
		case f < 1 || f > maxS:
			bad("timeout", "must be between 1 and "+strconv.FormatFloat(maxS, 'f', 0, 64))
		default:
			req.timeout = time.Duration(f) * time.Second
		}
	}

	if len(problems) > 0 {
		return scrapeRequest{}, Error(CodeValidationError, strings.Join(problems, "; "), nil)
	}
	return req, nil
}

// scriptNameProblem says what is wrong with a script name, or "".
func scriptNameProblem(s string) string {
	if s == "" {
		return "required"
	}
	if len(s) > maxScriptName {
		return "must be at most " + strconv.Itoa(maxScriptName) + " characters"
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_' || b == '-') {
			return "must match ^[a-zA-Z0-9_-]+$"
		}
	}
	return ""
}

// Interface guards
var (
	_ caddy.Provisioner           = (*ScrapeRPC)(nil)
	_ caddy.Validator             = (*ScrapeRPC)(nil)
	_ caddyhttp.MiddlewareHandler = (*ScrapeRPC)(nil)
)

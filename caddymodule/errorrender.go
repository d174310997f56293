package caddymodule

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(new(ScrapeError))
	httpcaddyfile.RegisterHandlerDirective("scrape_error", parseHandler[ScrapeError])
	httpcaddyfile.RegisterDirectiveOrder("scrape_error", httpcaddyfile.Before, "respond")
}

// ScrapeError is the `scrape_error` handler, meant for handle_errors: it
// renders every error of the server as the JSON error body of
// ../shared/design/http-api.md (ErrorBody), with the catalogue message of
// its code in Korean, or in English when the request's Accept-Language asks
// for it, and the request id.
//
// The code is that of the *CodedError in {http.error} when a scrapegate
// handler returned one; otherwise it follows from the status (401
// UNAUTHORIZED from the authentication handler, 429 RATE_LIMITED from
// rate_limit, 404 NOT_FOUND, 405 METHOD_NOT_ALLOWED, ...). Headers set
// before the error (WWW-Authenticate, Retry-After, Allow) are kept. For a
// 5xx status the client gets the catalogue message and a detail that holds
// nothing internal; the error itself is logged at error level with the
// request id. It never calls next.
type ScrapeError struct {
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (*ScrapeError) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.scrape_error",
		New: func() caddy.Module { return new(ScrapeError) },
	}
}

// Provision sets up the logger.
func (h *ScrapeError) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	return nil
}

// ServeHTTP writes the error response of the request's {http.error}.
func (h *ScrapeError) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	var err error
	reqID := ""
	if repl != nil {
		if v, ok := repl.Get("http.error"); ok {
			err, _ = v.(error)
		}
		reqID, _ = repl.GetString("http.request.uuid")
	}
	status, body := renderError(err, r.Header.Get("Accept-Language"), reqID)

	if status >= 500 && status != StatusClientClosedRequest {
		if c := h.logger.Check(zapcore.ErrorLevel, "request failed"); c != nil {
			c.Write(zap.String("request_id", reqID), zap.Int("status", status),
				zap.String("code", body.Code), zap.Error(err))
		}
	} else if h.unlogged(r, repl) {
		// the path, not the URI: its query may hold a credential (a /ws
		// token), which the access log's filter would have redacted
		if c := h.logger.Check(zapcore.InfoLevel, "request refused"); c != nil {
			clientID, _ := repl.GetString("http.auth.user.id")
			clientIP, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
			c.Write(zap.String("request_id", reqID), zap.String("client_id", clientID),
				zap.String("client_ip", clientIP), zap.String("method", r.Method),
				zap.String("path", r.URL.Path), zap.Int("status", status),
				zap.String("code", body.Code))
		}
	}

	buf := getBuffer()
	defer putBuffer(buf)
	if e := json.NewEncoder(buf).Encode(&body); e != nil {
		return caddyhttp.Error(http.StatusInternalServerError, e)
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json; charset=utf-8")
	hdr.Set("Content-Length", strconv.Itoa(buf.Len()))
	if wantsEnglish(r.Header.Get("Accept-Language")) {
		hdr.Set("Content-Language", "en")
	} else {
		hdr.Set("Content-Language", "ko")
	}
	hdr.Add("Vary", "Accept-Language")
	// drop what the failed handler may have set for its own body
	hdr.Del("Content-Encoding")
	hdr.Del("ETag")
	hdr.Del("Last-Modified")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
	return nil
}

// unlogged reports whether no log line tells of this refused request: the
// access log skips it (log_skip, as the example Caddyfile does for /scrape,
// whose calls scrape_rpc logs itself) and scrape_rpc did not see it (it was
// refused before, by jwt_auth or rate_limit, say).
func (h *ScrapeError) unlogged(r *http.Request, repl *caddy.Replacer) bool {
	if skip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.LogSkipVar).(bool); !skip || repl == nil {
		return false
	}
	_, seen := repl.Get(placeholderPrefix + "outcome")
	return !seen
}

// statusCodes are the codes of errors that carry no *CodedError: those of
// Caddy's own handlers and of other plugins, by status.
var statusCodes = map[int]string{
	http.StatusBadRequest:            CodeBadRequest,
	http.StatusUnauthorized:          CodeUnauthorized,
	http.StatusForbidden:             CodeForbidden,
	http.StatusNotFound:              CodeNotFound,
	http.StatusMethodNotAllowed:      CodeMethodNotAllowed,
	http.StatusRequestEntityTooLarge: CodeBodyTooLarge,
	http.StatusUnsupportedMediaType:  CodeUnsupportedMediaType,
	http.StatusTooManyRequests:       CodeRateLimited,
	StatusClientClosedRequest:        CodeClientClosedRequest,
	http.StatusGatewayTimeout:        CodeTimeout,
}

// renderError returns the status and the body of the response to err (nil
// when the error route was reached without one).
func renderError(err error, acceptLanguage, requestID string) (int, ErrorBody) {
	status := http.StatusInternalServerError
	var he caddyhttp.HandlerError
	if errors.As(err, &he) && he.StatusCode != 0 {
		status = he.StatusCode
	}

	code, detail := "", ""
	if ce, ok := codeOf(err); ok {
		code, detail = ce.Code, ce.Detail
		if e, ok := Catalogue[code]; ok && (he.StatusCode == 0 || he.StatusCode == e.Status) {
			status = e.Status
		}
	} else if c, ok := statusCodes[status]; ok {
		code = c
	} else if status >= 400 && status < 500 {
		code = CodeBadRequest
	} else {
		code = CodeInternalError
	}
	if status < 400 || status > 599 {
		status, code = http.StatusInternalServerError, CodeInternalError
	}
	if status >= 500 && detail == "" {
		// never a 5xx cause: it stays in the log, found by the request id
		detail = "request id " + requestID
	}
	return status, ErrorBody{
		Error:     Message(code, acceptLanguage),
		Detail:    detail,
		Code:      code,
		RequestID: requestID,
		Timestamp: time.Now().UTC(),
	}
}

// UnmarshalCaddyfile checks that the directive has no arguments or block.
// Syntax:
//
//	scrape_error [<matcher>]
func (h *ScrapeError) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return unmarshalNoArgs(d)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*ScrapeError)(nil)
	_ caddyhttp.MiddlewareHandler = (*ScrapeError)(nil)
	_ caddyfile.Unmarshaler       = (*ScrapeError)(nil)
)

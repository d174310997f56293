package caddymodule

import (
	"errors"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Error codes clients see in the "code" field of an error body. They are
// stable: clients match on them, never on the message.
const (
	CodeMalformedJSON        = "MALFORMED_JSON"
	CodeBadRequest           = "BAD_REQUEST"
	CodeUnauthorized         = "UNAUTHORIZED"
	CodeForbidden            = "FORBIDDEN"
	CodeNotFound             = "NOT_FOUND"
	CodeMethodNotAllowed     = "METHOD_NOT_ALLOWED"
	CodeUpgradeRequired      = "UPGRADE_REQUIRED"
	CodeUnknownScript        = "UNKNOWN_SCRIPT"
	CodeUnknownVersion       = "UNKNOWN_VERSION"
	CodeBodyTooLarge         = "BODY_TOO_LARGE"
	CodeUnsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE"
	CodeValidationError      = "VALIDATION_ERROR"
	CodeInvalidParameters    = "INVALID_PARAMETERS"
	CodeRateLimited          = "RATE_LIMITED"
	CodeTooManyInFlight      = "TOO_MANY_IN_FLIGHT"
	CodeClientClosedRequest  = "CLIENT_CLOSED_REQUEST"
	CodeInternalError        = "INTERNAL_ERROR"
	CodeBrokerUnavailable    = "BROKER_UNAVAILABLE"
	CodeNoWorkers            = "NO_WORKERS"
	CodeTimeout              = "TIMEOUT"
)

// StatusClientClosedRequest is the non-standard status logged when the
// client went away before its answer (nginx's 499).
const StatusClientClosedRequest = 499

// Entry is one row of the error catalogue: the HTTP status of a code and its
// message in each language.
type Entry struct {
	Status int
	Ko     string
	En     string
}

// Catalogue is the one table of error codes: status and messages. Every
// error the gateway renders takes its message from here.
var Catalogue = map[string]Entry{
	CodeMalformedJSON:        {http.StatusBadRequest, "요청 본문이 올바른 JSON이 아닙니다.", "The request body is not valid JSON."},
	CodeBadRequest:           {http.StatusBadRequest, "잘못된 요청입니다.", "Bad request."},
	CodeUnauthorized:         {http.StatusUnauthorized, "인증이 필요합니다. 유효한 토큰 또는 API 키를 제공하세요.", "Authentication required: provide a valid token or API key."},
	CodeForbidden:            {http.StatusForbidden, "이 작업을 수행할 권한이 없습니다.", "You are not allowed to do this."},
	CodeNotFound:             {http.StatusNotFound, "요청한 경로를 찾을 수 없습니다.", "The requested path does not exist."},
	CodeMethodNotAllowed:     {http.StatusMethodNotAllowed, "허용되지 않는 HTTP 메서드입니다.", "This HTTP method is not allowed here."},
	CodeUpgradeRequired:      {http.StatusUpgradeRequired, "이 경로는 WebSocket 연결만 받습니다.", "This endpoint accepts WebSocket connections only."},
	CodeUnknownScript:        {http.StatusNotFound, "요청한 스크립트를 실행하는 워커가 없습니다.", "No worker serves the requested script."},
	CodeUnknownVersion:       {http.StatusNotFound, "요청한 스크립트 버전이 없습니다.", "The requested script version does not exist."},
	CodeBodyTooLarge:         {http.StatusRequestEntityTooLarge, "요청 본문이 너무 큽니다.", "The request body is too large."},
	CodeUnsupportedMediaType: {http.StatusUnsupportedMediaType, "요청 본문은 application/json이어야 합니다.", "The request body must be application/json."},
	CodeValidationError:      {http.StatusUnprocessableEntity, "요청 값이 올바르지 않습니다.", "The request failed validation."},
	CodeInvalidParameters:    {http.StatusUnprocessableEntity, "스크립트 매개변수가 올바르지 않습니다.", "The script parameters are invalid."},
	CodeRateLimited:          {http.StatusTooManyRequests, "요청 한도를 초과했습니다. 잠시 후 다시 시도하세요.", "Rate limit exceeded; retry later."},
	CodeTooManyInFlight:      {http.StatusTooManyRequests, "동시에 처리 중인 요청이 너무 많습니다.", "Too many calls in flight for this client."},
	CodeClientClosedRequest:  {StatusClientClosedRequest, "클라이언트가 요청을 취소했습니다.", "The client closed the request."},
	CodeInternalError:        {http.StatusInternalServerError, "내부 서버 오류가 발생했습니다.", "Internal server error."},
	CodeBrokerUnavailable:    {http.StatusServiceUnavailable, "메시지 브로커에 연결할 수 없습니다. 잠시 후 다시 시도하세요.", "The message broker is unavailable; retry later."},
	CodeNoWorkers:            {http.StatusServiceUnavailable, "이 스크립트를 처리할 수 있는 워커가 없습니다.", "No live worker can run this script."},
	CodeTimeout:              {http.StatusGatewayTimeout, "요청 시간이 초과되었습니다.", "The request timed out."},
}

// Message returns the catalogue message of code in the language asked by an
// Accept-Language header value: English when its first language is English,
// Korean otherwise (the default).
func Message(code, acceptLanguage string) string {
	e, ok := Catalogue[code]
	if !ok {
		e = Catalogue[CodeInternalError]
	}
	if wantsEnglish(acceptLanguage) {
		return e.En
	}
	return e.Ko
}

// wantsEnglish reports whether the first language of an Accept-Language
// header is English ("en", "en-US", ...).
func wantsEnglish(acceptLanguage string) bool {
	first, _, _ := strings.Cut(acceptLanguage, ",")
	first, _, _ = strings.Cut(first, ";")
	first = strings.ToLower(strings.TrimSpace(first))
	return first == "en" || strings.HasPrefix(first, "en-")
}

// CodedError is an error that carries a catalogue code and a detail safe to
// show to the client. Handlers wrap it in caddyhttp.Error; the error renderer
// (scrape_error) finds it with errors.As.
type CodedError struct {
	// Code is a catalogue code.
	Code string
	// Detail is shown to the client in the "detail" field; it must never
	// hold internal details.
	Detail string
	// Err is the internal cause, for the log only.
	Err error
}

// Error implements error.
func (e *CodedError) Error() string {
	if e.Err != nil {
		return e.Code + ": " + e.Detail + ": " + e.Err.Error()
	}
	return e.Code + ": " + e.Detail
}

// Unwrap returns the internal cause.
func (e *CodedError) Unwrap() error { return e.Err }

// codeOf returns the catalogue code of err, if it carries one.
func codeOf(err error) (*CodedError, bool) {
	var ce *CodedError
	if errors.As(err, &ce) {
		return ce, true
	}
	return nil, false
}

// Error returns the handler error for a catalogue code: a caddyhttp.HandlerError
// with the code's status, carrying a *CodedError. detail is shown to the
// client; cause goes only to the log.
func Error(code, detail string, cause error) error {
	status := http.StatusInternalServerError
	if e, ok := Catalogue[code]; ok {
		status = e.Status
	}
	return caddyhttp.Error(status, &CodedError{Code: code, Detail: detail, Err: cause})
}

package worker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/net/html/charset"

	"github.com/scrapegate/scrapegate/rpc"
)

// userAgent is sent when the parameters set none.
const userAgent = "scrapegate-worker/1.0 (+https://github.com/scrapegate/scrapegate)"

// fetchProperties are the parameters http_fetch and html_extract share.
const fetchProperties = `
		"url": {"type": "string", "pattern": "^[hH][tT][tT][pP][sS]?://", "maxLength": 8192, "description": "The http or https URL to fetch."},
		"headers": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Request headers."},
		"timeout_ms": {"type": "integer", "minimum": 1, "description": "Longest time for the whole fetch, body included; the worker's limit and the task's deadline bound it too."},
		"max_body_bytes": {"type": "integer", "minimum": 1, "description": "Largest body to read; the worker's limit bounds it too."},
		"max_redirects": {"type": "integer", "minimum": 0, "description": "Most redirects to follow before failing; the worker's limit bounds it too."},
		"follow_redirects": {"type": "boolean", "description": "false returns a redirect as the answer instead of following it. Default true."}`

const httpFetchSchema = `{
	"type": "object",
	"properties": {` + fetchProperties + `,
		"method": {"enum": ["GET", "POST"], "description": "Default GET."},
		"body": {"type": "string", "description": "Request body (POST)."},
		"truncate": {"type": "boolean", "description": "true returns the first max_body_bytes of a larger body (truncated: true) instead of failing with OUTPUT_TOO_LARGE."}
	},
	"required": ["url"],
	"additionalProperties": false
}`

// fetchParams are the parameters of one fetch.
type fetchParams struct {
	URL             string            `json:"url"`
	Method          string            `json:"method"`
	Headers         map[string]string `json:"headers"`
	Body            *string           `json:"body"`
	TimeoutMS       int64             `json:"timeout_ms"`
	MaxBodyBytes    int64             `json:"max_body_bytes"`
	MaxRedirects    *int              `json:"max_redirects"`
	FollowRedirects *bool             `json:"follow_redirects"`
	Truncate        bool              `json:"truncate"`
}

// fetchAnswer is what a fetch got.
type fetchAnswer struct {
	URL       string
	Status    int
	Header    http.Header
	Body      []byte
	Truncated bool
	Redirects []string
}

// fetcher does the HTTP requests of the built-ins, through the checked dialer.
type fetcher struct {
	transport    *http.Transport
	maxBody      int64
	maxRedirects int
	timeout      time.Duration
}

func newFetcher(cfg Config) *fetcher {
	policy := AddressPolicy{Allow: cfg.AllowNetworks}
	return &fetcher{
		transport: &http.Transport{
			Proxy:                 nil, // a proxy would be a way around the address checks
			DialContext:           policy.DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          100,
			MaxIdleConnsPerHost:   8,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
			TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		},
		maxBody:      cfg.FetchMaxBodyBytes,
		maxRedirects: cfg.FetchMaxRedirects,
		timeout:      cfg.FetchTimeout,
	}
}

// errTooManyRedirects stops a redirect chain.
var errTooManyRedirects = errors.New("too many redirects")

// fetch does one request. Its errors are *rpc.TaskError.
func (f *fetcher) fetch(ctx context.Context, p fetchParams) (*fetchAnswer, error) {
	u, err := url.Parse(p.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, &rpc.TaskError{Code: rpc.CodeInvalidParameters, Message: fmt.Sprintf("url %q is not an absolute http or https URL", p.URL)}
	}
	timeout := f.timeout
	if p.TimeoutMS > 0 && time.Duration(p.TimeoutMS)*time.Millisecond < timeout {
		timeout = time.Duration(p.TimeoutMS) * time.Millisecond
	}
	maxBody := f.maxBody
	if p.MaxBodyBytes > 0 && p.MaxBodyBytes < maxBody {
		maxBody = p.MaxBodyBytes
	}
	maxRedirects := f.maxRedirects
	if p.MaxRedirects != nil && *p.MaxRedirects < maxRedirects {
		maxRedirects = *p.MaxRedirects
	}
	follow := p.FollowRedirects == nil || *p.FollowRedirects

	fctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	method := p.Method
	if method == "" {
		method = http.MethodGet
	}
	var body io.Reader
	if p.Body != nil {
		body = strings.NewReader(*p.Body)
	}
	req, err := http.NewRequestWithContext(fctx, method, u.String(), body)
	if err != nil {
		return nil, &rpc.TaskError{Code: rpc.CodeInvalidParameters, Message: fmt.Sprintf("making the request: %v", err)}
	}
	req.Header.Set("User-Agent", userAgent)
	for k, v := range p.Headers {
		req.Header.Set(k, v)
	}
	var redirects []string
	client := &http.Client{
		Transport: f.transport,
		CheckRedirect: func(next *http.Request, via []*http.Request) error {
			if !follow {
				return http.ErrUseLastResponse
			}
			if len(via) > maxRedirects {
				return fmt.Errorf("%w: stopped after %d", errTooManyRedirects, maxRedirects)
			}
			if next.URL.Scheme != "http" && next.URL.Scheme != "https" {
				return fmt.Errorf("redirect to a %q URL", next.URL.Scheme)
			}
			redirects = append(redirects, via[len(via)-1].URL.Redacted())
			return nil
		},
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fetchError(ctx, fctx, u, timeout, err)
	}
	defer resp.Body.Close()

	ans := &fetchAnswer{URL: resp.Request.URL.String(), Status: resp.StatusCode, Header: resp.Header, Redirects: redirects}
	if resp.ContentLength > maxBody && !p.Truncate {
		return nil, tooLarge(u, maxBody)
	}
	ans.Body, err = io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, fetchError(ctx, fctx, u, timeout, err)
	}
	if int64(len(ans.Body)) > maxBody {
		if !p.Truncate {
			return nil, tooLarge(u, maxBody)
		}
		ans.Body, ans.Truncated = ans.Body[:maxBody], true
	}
	return ans, nil
}

func tooLarge(u *url.URL, limit int64) *rpc.TaskError {
	return &rpc.TaskError{Code: rpc.CodeOutputTooLarge, Message: fmt.Sprintf("fetching %s: the body is larger than %d bytes", u.Redacted(), limit)}
}

// fetchError explains why a fetch failed, in words an operator can act on.
func fetchError(ctx, fctx context.Context, u *url.URL, timeout time.Duration, err error) *rpc.TaskError {
	what := "fetching " + u.Redacted()
	if te := ctxTaskError(ctx); te != nil {
		te.Message = what + ": " + te.Message
		return te
	}
	if errors.Is(fctx.Err(), context.DeadlineExceeded) {
		return &rpc.TaskError{Code: rpc.CodeScriptTimeout, Message: fmt.Sprintf("%s: no complete answer within %s", what, timeout)}
	}
	var (
		refused    *RefusedError
		dnsErr     *net.DNSError
		certErr    *tls.CertificateVerificationError
		unknownCA  x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		invalidErr x509.CertificateInvalidError
		recordErr  tls.RecordHeaderError
		alertErr   tls.AlertError
		urlErr     *url.Error
	)
	var msg string
	switch {
	case errors.As(err, &refused):
		msg = refused.Error()
	case errors.Is(err, errTooManyRedirects):
		msg = unwrapURLError(err).Error()
	case errors.As(err, &dnsErr):
		msg = fmt.Sprintf("DNS lookup of %s failed: %s", dnsErr.Name, dnsErr.Err)
	case errors.As(err, &certErr), errors.As(err, &unknownCA), errors.As(err, &hostErr),
		errors.As(err, &invalidErr), errors.As(err, &recordErr), errors.As(err, &alertErr):
		msg = "TLS handshake failed: " + unwrapURLError(err).Error()
	case errors.As(err, &urlErr):
		msg = urlErr.Err.Error()
	default:
		msg = err.Error()
	}
	return &rpc.TaskError{Code: rpc.CodeScriptError, Message: what + ": " + msg}
}

// unwrapURLError drops the "Get <url>:" prefix of an *url.Error.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// runHTTPFetch is the http_fetch script.
func (rt *Runtime) runHTTPFetch(ctx context.Context, c *call) (json.RawMessage, error) {
	var p fetchParams
	if err := json.Unmarshal(c.params, &p); err != nil {
		return nil, &rpc.TaskError{Code: rpc.CodeInvalidParameters, Message: fmt.Sprintf("decoding parameters: %v", err)}
	}
	if p.Method == http.MethodGet && p.Body != nil {
		return nil, &rpc.TaskError{Code: rpc.CodeInvalidParameters, Message: "a body needs method POST"}
	}
	if p.Method == "" && p.Body != nil {
		p.Method = http.MethodPost
	}
	ans, err := rt.fetcher.fetch(ctx, p)
	if err != nil {
		return nil, err
	}
	out := struct {
		URL        string      `json:"url"`
		Status     int         `json:"status"`
		Headers    http.Header `json:"headers"`
		Body       *string     `json:"body"`
		BodyBase64 *string     `json:"body_base64,omitempty"`
		Truncated  bool        `json:"truncated"`
		Redirects  []string    `json:"redirects"`
	}{URL: ans.URL, Status: ans.Status, Headers: ans.Header, Truncated: ans.Truncated, Redirects: ans.Redirects}
	if out.Redirects == nil {
		out.Redirects = []string{}
	}
	if text, ok := bodyText(ans.Body, ans.Header.Get("Content-Type")); ok {
		out.Body = &text
	} else {
		b64 := base64.StdEncoding.EncodeToString(ans.Body)
		out.BodyBase64 = &b64
	}
	return json.Marshal(out)
}

// bodyText decodes a body to UTF-8 text by its declared or sniffed charset;
// false for a body that is not text (it is then sent in base64).
func bodyText(raw []byte, contentType string) (string, bool) {
	if !isTextual(contentType) && !utf8.Valid(raw) {
		return "", false
	}
	enc, name, _ := charset.DetermineEncoding(raw, contentType)
	if name == "utf-8" {
		return strings.ToValidUTF8(string(raw), "\uFFFD"), true
	}
	text, err := enc.NewDecoder().Bytes(raw)
	if err != nil {
		return "", false
	}
	return string(text), true
}

// isTextual tells a text media type: text/*, JSON, XML, JavaScript, forms.
func isTextual(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	switch {
	case strings.HasPrefix(mt, "text/"),
		strings.HasSuffix(mt, "+json"), strings.HasSuffix(mt, "+xml"),
		strings.HasSuffix(mt, "/json"), strings.HasSuffix(mt, "/xml"),
		strings.HasSuffix(mt, "/javascript"), mt == "application/x-www-form-urlencoded":
		return true
	}
	return false
}

package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/scrapegate/scrapegate/rpc"
)

// OpenAPIVersion is the version of the OpenAPI specification the generated
// document follows (its schemas are JSON Schema 2020-12, like the
// reflected Go types and the workers' parameter schemas).
const OpenAPIVersion = "3.1.0"

// Names of the security schemes in the document.
const (
	SchemeBearer  = "bearerAuth"
	SchemeAPIKey  = "apiKeyAuth"
	SchemeWSToken = "wsTokenQuery"
)

// specOptions is what a deployment changes in the document.
type specOptions struct {
	Title   string
	Version string
	Servers []OpenAPIServer
	// Paths maps an endpoint to its path; a missing endpoint is at its
	// DefaultPaths path, an empty path leaves it out.
	Paths map[string]string
}

// path returns where endpoint is mounted, "" when it is left out.
func (o specOptions) path(endpoint string) string {
	if p, ok := o.Paths[endpoint]; ok {
		return p
	}
	return DefaultPaths[endpoint]
}

// baseSchemas are the component schemas reflected from the Go types,
// computed once per process: they depend only on the code.
var baseSchemas = sync.OnceValues(func() (openapi3.Schemas, error) {
	comments, err := goComments(typeSources, packagePath)
	if err != nil {
		return nil, err
	}
	ss := newSchemaSet(comments)
	// The gateway decodes the request strictly: no other property.
	ss.closed[reflect.TypeFor[ScrapeRequest]()] = true
	for _, v := range apiTypes {
		if _, err := ss.add(v); err != nil {
			return nil, err
		}
	}
	return ss.schemas, nil
})

// cloneSchemas deep-copies schemas, so that a document built from them can
// be changed without touching the shared originals.
func cloneSchemas(in openapi3.Schemas) (openapi3.Schemas, error) {
	b, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	out := make(openapi3.Schemas)
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// specBuilder builds one document.
type specBuilder struct {
	opts    specOptions
	doc     *openapi3.T
	scripts []ScriptDescription
	// used records the error codes some operation documents; the others
	// go to every operation's default response.
	used map[string]bool
	// ops lists the operations built, for the default responses.
	ops []*openapi3.Operation
	// badSchemas names the scripts whose parameter schema is not a valid
	// OpenAPI 3.1 schema, with why.
	badSchemas map[string]string
}

// buildSpec builds the OpenAPI document of the API: the routes, the types
// reflected from the Go code, the error catalogue, the WebSocket messages
// and the scripts live workers advertise.
func buildSpec(opts specOptions, scripts []ScriptDescription) (*openapi3.T, error) {
	base, err := baseSchemas()
	if err != nil {
		return nil, fmt.Errorf("reflecting the API types: %v", err)
	}
	schemas, err := cloneSchemas(base)
	if err != nil {
		return nil, fmt.Errorf("copying the API schemas: %v", err)
	}
	if opts.Title == "" {
		opts.Title = "scrapegate API"
	}
	if opts.Version == "" {
		opts.Version = BuildVersion()
	}
	b := &specBuilder{
		opts:       opts,
		scripts:    scripts,
		used:       make(map[string]bool),
		badSchemas: make(map[string]string),
		doc: &openapi3.T{
			OpenAPI: OpenAPIVersion,
			Info: &openapi3.Info{
				Title:   opts.Title,
				Version: opts.Version,
				Summary: "A synchronous scraping API: send one request, a worker runs the script, get the result in the response.",
			},
			Paths: openapi3.NewPaths(),
			Components: &openapi3.Components{
				Schemas:         schemas,
				SecuritySchemes: make(openapi3.SecuritySchemes),
				Examples:        make(openapi3.Examples),
			},
			Extensions: make(map[string]any),
		},
	}
	b.info()
	b.security()
	b.errorExamples()
	b.scriptSchemas()
	b.websocketSchemas()
	b.operations()
	b.defaultResponses()
	b.tags()
	for _, s := range opts.Servers {
		b.doc.Servers = append(b.doc.Servers, &openapi3.Server{URL: s.URL, Description: s.Description})
	}
	return b.doc, nil
}

// validateSpec checks the document as a client would read it: serialised,
// loaded back (every reference resolved) and validated as OpenAPI 3.1.
func validateSpec(ctx context.Context, doc *openapi3.T) error {
	b, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("encoding the document: %v", err)
	}
	return validateSpecJSON(ctx, b)
}

// validateSpecJSON loads and validates a serialised document.
func validateSpecJSON(ctx context.Context, b []byte) error {
	loaded, err := openapi3.NewLoader().LoadFromData(b)
	if err != nil {
		return fmt.Errorf("loading the document: %v", err)
	}
	if err := loaded.Validate(ctx, openapi3.EnableExamplesValidation()); err != nil {
		return fmt.Errorf("validating the document: %v", err)
	}
	return nil
}

// info writes the document's description: how to authenticate, how errors
// look (with the whole catalogue) and which scripts are live.
func (b *specBuilder) info() {
	var sb strings.Builder
	sb.WriteString(`scrapegate runs scraping scripts on workers behind RabbitMQ and answers synchronously: ` +
		"`POST " + b.path(EndpointScrape) + "` waits for the script's result and returns it in the response.\n\n" +
		"**Authentication**: `Authorization: Bearer <JWT>` (HS256 by default; claims `client_id`, `type: \"access\"`, `exp`, `iat`) " +
		"or `X-API-Key: <key>`. The authenticated client id is what rate limits, logs and WebSocket event filtering key on.\n\n" +
		"**Errors**: every error has the body `ErrorBody` with a stable machine `code`; clients match on the code, never on the message. " +
		"Messages are Korean by default; send `Accept-Language: en` for English.\n\n" +
		"| status | code | message (en) |\n|---|---|---|\n")
	for _, code := range catalogueCodes() {
		e := Catalogue[code]
		fmt.Fprintf(&sb, "| %d | `%s` | %s |\n", e.Status, code, e.En)
	}
	sb.WriteString("\nA script that ran and failed is a 200 whose `status` is `failed`, with the worker's `error_code`: " +
		"`" + rpc.CodeScriptError + "`, `" + rpc.CodeScriptTimeout + "`, `" + rpc.CodeOutputTooLarge + "` or `" + rpc.CodeWorkerError + "`.\n")
	if p := b.path(EndpointWS); p != "" {
		sb.WriteString("\n**Live status**: `GET " + p + "` is a WebSocket; its messages are described on that operation " +
			"(extension `x-websocket`) and in the `WebSocket*` schemas.\n")
	}
	b.doc.Info.Description = sb.String()

	catalogue := make(map[string]any, len(Catalogue))
	for code, e := range Catalogue {
		catalogue[code] = map[string]any{"status": e.Status, "message_ko": e.Ko, "message_en": e.En}
	}
	b.doc.Extensions["x-error-catalogue"] = catalogue
}

// path returns where endpoint is mounted.
func (b *specBuilder) path(endpoint string) string { return b.opts.path(endpoint) }

// security declares the two ways to authenticate (and the WebSocket's
// query token).
func (b *specBuilder) security() {
	ss := b.doc.Components.SecuritySchemes
	ss[SchemeBearer] = &openapi3.SecuritySchemeRef{Value: openapi3.NewJWTSecurityScheme().
		WithDescription("A JWT access token (`scrapegate token` mints one): `Authorization: Bearer <token>`. " +
			"HS256 by default; the claims `client_id`, `type: \"access\"`, `exp` and `iat` are required.")}
	ss[SchemeAPIKey] = &openapi3.SecuritySchemeRef{Value: openapi3.NewSecurityScheme().
		WithType("apiKey").WithIn("header").WithName("X-API-Key").
		WithDescription("An API key from the gateway's API keys file: `X-API-Key: <key>`.")}
	if b.path(EndpointWS) != "" {
		ss[SchemeWSToken] = &openapi3.SecuritySchemeRef{Value: openapi3.NewSecurityScheme().
			WithType("apiKey").WithIn("query").WithName("token").
			WithDescription("For the WebSocket only, where browsers cannot set headers: the JWT (or API key) " +
				"as the `token` query parameter. It may also be offered as a `Sec-WebSocket-Protocol` value.")}
	}
}

// authenticated is the security requirement of the endpoints behind
// jwt_auth: a bearer JWT or an API key.
func authenticated(extra ...string) *openapi3.SecurityRequirements {
	srs := openapi3.NewSecurityRequirements().
		With(openapi3.NewSecurityRequirement().Authenticate(SchemeBearer)).
		With(openapi3.NewSecurityRequirement().Authenticate(SchemeAPIKey))
	for _, s := range extra {
		srs.With(openapi3.NewSecurityRequirement().Authenticate(s))
	}
	return srs
}

// public is the security requirement of an endpoint anyone may call.
func public() *openapi3.SecurityRequirements { return openapi3.NewSecurityRequirements() }

// exampleTime is the fixed time of the examples, so the document is the same
// from one request to the next.
var exampleTime = time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)

// exampleRequestID is the request id of the examples.
const exampleRequestID = "0b4f1c9e-6a8d-4c51-9d1e-2f7a3b5c8e01"

// errorDetails are the example details of the error examples.
var errorDetails = map[string]string{
	CodeMalformedJSON:        "invalid character '}' looking for beginning of object key string (offset 17)",
	CodeUnauthorized:         "missing credentials: send Authorization: Bearer <token> or X-API-Key",
	CodeForbidden:            "a refresh token cannot call this endpoint",
	CodeNotFound:             "no route for GET /nope",
	CodeMethodNotAllowed:     "GET is not allowed here; use POST",
	CodeUnknownScript:        `no worker serves the script "nope"`,
	CodeUnknownVersion:       `script "echo" has no version "9.9.9"`,
	CodeBodyTooLarge:         "the body is over 1048576 bytes",
	CodeUnsupportedMediaType: "Content-Type is text/plain; send application/json",
	CodeValidationError:      "timeout: must be between 1 and 3600",
	CodeInvalidParameters:    "parameters.url: missing property",
	CodeRateLimited:          "retry in 12s",
	CodeTooManyInFlight:      "32 calls already in flight",
	CodeClientClosedRequest:  "the client went away; the task was cancelled",
	CodeInternalError:        "see the gateway log for this request id",
	CodeBrokerUnavailable:    "the broker link is down",
	CodeNoWorkers:            `no live worker serves "html_extract"`,
	CodeTimeout:              "no reply within 30s",
}

// catalogueCodes returns the catalogue's codes by status, then name.
func catalogueCodes() []string {
	codes := make([]string, 0, len(Catalogue))
	for code := range Catalogue {
		codes = append(codes, code)
	}
	sort.Slice(codes, func(i, j int) bool {
		a, b := Catalogue[codes[i]].Status, Catalogue[codes[j]].Status
		if a != b {
			return a < b
		}
		return codes[i] < codes[j]
	})
	return codes
}

// errorExampleName is the component example of an error code.
func errorExampleName(code string) string { return "error." + code }

// errorExamples adds one component example per catalogue code.
func (b *specBuilder) errorExamples() {
	for _, code := range catalogueCodes() {
		e := Catalogue[code]
		b.doc.Components.Examples[errorExampleName(code)] = &openapi3.ExampleRef{Value: &openapi3.Example{
			Summary:     fmt.Sprintf("%s: %s", code, e.En),
			Description: fmt.Sprintf("HTTP %d. Korean message (the default): %s", e.Status, e.Ko),
			Value: ErrorBody{
				Error:     e.Ko,
				Detail:    errorDetails[code],
				Code:      code,
				RequestID: exampleRequestID,
				Timestamp: exampleTime,
			},
		}}
	}
}

// errorResponse is the response of one status, documenting codes (which
// must all have that status).
func (b *specBuilder) errorResponse(status int, codes []string) *openapi3.ResponseRef {
	var desc strings.Builder
	if status == StatusClientClosedRequest {
		desc.WriteString("Client Closed Request (never received: logged when the client went away before its answer).")
	} else {
		desc.WriteString(http.StatusText(status) + ".")
	}
	mt := &openapi3.MediaType{
		Schema:   openapi3.NewSchemaRef(componentRef("ErrorBody"), nil),
		Examples: make(openapi3.Examples),
	}
	for _, code := range codes {
		fmt.Fprintf(&desc, "\n- `%s`: %s", code, Catalogue[code].En)
		mt.Examples[code] = &openapi3.ExampleRef{Ref: "#/components/examples/" + errorExampleName(code)}
		b.used[code] = true
	}
	resp := openapi3.NewResponse().WithDescription(desc.String())
	resp.Content = openapi3.Content{"application/json": mt}
	switch status {
	case http.StatusUnauthorized:
		resp.Headers = openapi3.Headers{"WWW-Authenticate": headerRef("The authentication schemes accepted: `Bearer`.")}
	case http.StatusTooManyRequests:
		resp.Headers = openapi3.Headers{"Retry-After": headerRef("Seconds to wait before retrying.")}
	case http.StatusMethodNotAllowed:
		resp.Headers = openapi3.Headers{"Allow": headerRef("The methods allowed.")}
	}
	return &openapi3.ResponseRef{Value: resp}
}

// headerRef is a string response header.
func headerRef(desc string) *openapi3.HeaderRef {
	return &openapi3.HeaderRef{Value: &openapi3.Header{Parameter: openapi3.Parameter{
		Description: desc,
		Schema:      openapi3.NewStringSchema().NewRef(),
	}}}
}

// addErrors documents codes on the operation's responses, one response per
// status.
func (b *specBuilder) addErrors(op *openapi3.Operation, codes ...string) {
	byStatus := make(map[int][]string)
	for _, code := range codes {
		e, ok := Catalogue[code]
		if !ok {
			continue
		}
		byStatus[e.Status] = append(byStatus[e.Status], code)
	}
	statuses := make([]int, 0, len(byStatus))
	for s := range byStatus {
		statuses = append(statuses, s)
	}
	sort.Ints(statuses)
	for _, s := range statuses {
		op.Responses.Set(strconv.Itoa(s), b.errorResponse(s, byStatus[s]))
	}
}

// defaultResponses documents, on every operation, the catalogue codes no
// operation names: they can happen anywhere (an unknown path, an internal
// error), and so every code of the catalogue is in the document.
func (b *specBuilder) defaultResponses() {
	var rest []string
	for _, code := range catalogueCodes() {
		if !b.used[code] {
			rest = append(rest, code)
		}
	}
	if len(rest) == 0 {
		return
	}
	mt := &openapi3.MediaType{
		Schema:   openapi3.NewSchemaRef(componentRef("ErrorBody"), nil),
		Examples: make(openapi3.Examples),
	}
	desc := "Any other error of the catalogue; its status is the code's."
	for _, code := range rest {
		desc += fmt.Sprintf("\n- `%s` (%d): %s", code, Catalogue[code].Status, Catalogue[code].En)
		mt.Examples[code] = &openapi3.ExampleRef{Ref: "#/components/examples/" + errorExampleName(code)}
	}
	for _, op := range b.ops {
		resp := openapi3.NewResponse().WithDescription(desc)
		resp.Content = openapi3.Content{"application/json": mt}
		op.Responses.Set("default", &openapi3.ResponseRef{Value: resp})
	}
}

// jsonResponse is a 200 JSON response of schema ref.
func jsonResponse(desc, ref string, examples openapi3.Examples) *openapi3.ResponseRef {
	resp := openapi3.NewResponse().WithDescription(desc)
	resp.Content = openapi3.Content{"application/json": &openapi3.MediaType{
		Schema:   openapi3.NewSchemaRef(ref, nil),
		Examples: examples,
	}}
	return &openapi3.ResponseRef{Value: resp}
}

// example is a named inline example.
func example(summary string, value any) *openapi3.ExampleRef {
	return &openapi3.ExampleRef{Value: &openapi3.Example{Summary: summary, Value: value}}
}

// addOp adds op at path under method, if the endpoint is mounted.
func (b *specBuilder) addOp(endpoint, method string, op *openapi3.Operation) {
	p := b.path(endpoint)
	if p == "" {
		return
	}
	item := b.doc.Paths.Value(p)
	if item == nil {
		item = &openapi3.PathItem{}
		b.doc.Paths.Set(p, item)
	}
	item.SetOperation(method, op)
	b.ops = append(b.ops, op)
}

// Operation tags.
const (
	tagScrape = "scrape"
	tagLive   = "live"
	tagSystem = "system"
	tagDocs   = "docs"
)

// operations adds every endpoint.
func (b *specBuilder) operations() {
	b.scrapeOp()
	b.wsOp()

	status := &openapi3.Operation{
		OperationID: "getStatus", Tags: []string{tagLive}, Summary: "System status",
		Description: "Queue length, workers and their scripts, call counts, uptime, CPU and memory of the gateway.",
		Security:    authenticated(), Responses: openapi3.NewResponses(),
	}
	status.Responses.Set("200", jsonResponse("The status.", componentRef(statusSchemaName), nil))
	b.addErrors(status, CodeUnauthorized, CodeForbidden, CodeMethodNotAllowed)
	b.addOp(EndpointStatus, http.MethodGet, status)

	scripts := &openapi3.Operation{
		OperationID: "listScripts", Tags: []string{tagScrape}, Summary: "The scripts live workers serve",
		Description: "Names, versions (newest first), descriptions and parameter schemas of the scripts that live workers " +
			"advertise in their heartbeats, taken at the time of the request.",
		Security: authenticated(), Responses: openapi3.NewResponses(),
	}
	scripts.Responses.Set("200", jsonResponse("The scripts.", componentRef("ScriptsResponse"), openapi3.Examples{
		"live": example("The scripts live workers serve now", ScriptsResponse{
			Scripts: b.scriptsOrEcho(), Count: len(b.scriptsOrEcho()), Timestamp: exampleTime,
		}),
	}))
	b.addErrors(scripts, CodeUnauthorized, CodeForbidden, CodeMethodNotAllowed)
	b.addOp(EndpointScripts, http.MethodGet, scripts)

	health := &openapi3.Operation{
		OperationID: "getHealth", Tags: []string{tagSystem}, Summary: "Liveness and readiness",
		Description: "Whether the gateway is up and its broker link is ready. No authentication, for load balancers and probes.",
		Security:    public(), Responses: openapi3.NewResponses(),
	}
	health.Responses.Set("200", jsonResponse("Ready: the broker link is up.", componentRef(healthSchemaName), nil))
	health.Responses.Set("503", jsonResponse("Not ready: the broker link is down.", componentRef(healthSchemaName), nil))
	b.addOp(EndpointHealth, http.MethodGet, health)

	info := &openapi3.Operation{
		OperationID: "getInfo", Tags: []string{tagSystem}, Summary: "Name, version and status",
		Security: public(), Responses: openapi3.NewResponses(),
	}
	info.Responses.Set("200", jsonResponse("The gateway.", componentRef("InfoResponse"), openapi3.Examples{
		"ok": example("The broker link is up", InfoResponse{Name: Name, Version: b.opts.Version, Status: "ok"}),
	}))
	b.addErrors(info, CodeMethodNotAllowed)
	b.addOp(EndpointInfo, http.MethodGet, info)

	metrics := &openapi3.Operation{
		OperationID: "getMetrics", Tags: []string{tagSystem}, Summary: "Prometheus metrics",
		Description: "Caddy's and scrapegate's metrics in the Prometheus text format.",
		Security:    public(), Responses: openapi3.NewResponses(),
	}
	metrics.Responses.Set("200", textResponse("The metrics.", "text/plain; version=0.0.4"))
	b.addOp(EndpointMetrics, http.MethodGet, metrics)

	spec := &openapi3.Operation{
		OperationID: "getOpenAPI", Tags: []string{tagDocs}, Summary: "This document",
		Description: "The OpenAPI 3.1 description of the API, generated from the gateway's code and error catalogue, " +
			"with the scripts live workers advertise at the time of the request.",
		Security: public(), Responses: openapi3.NewResponses(),
	}
	specResp := openapi3.NewResponse().WithDescription("The OpenAPI document.")
	specResp.Content = openapi3.NewContentWithJSONSchema(openapi3.NewObjectSchema())
	spec.Responses.Set("200", &openapi3.ResponseRef{Value: specResp})
	b.addErrors(spec, CodeMethodNotAllowed)
	b.addOp(EndpointOpenAPI, http.MethodGet, spec)

	docs := &openapi3.Operation{
		OperationID: "getDocs", Tags: []string{tagDocs}, Summary: "A page to read and try the API",
		Description: "Swagger UI over this document, served from the gateway itself (no external requests).",
		Security:    public(), Responses: openapi3.NewResponses(),
	}
	docs.Responses.Set("200", textResponse("The page.", "text/html"))
	b.addErrors(docs, CodeMethodNotAllowed)
	b.addOp(EndpointDocs, http.MethodGet, docs)

	dash := &openapi3.Operation{
		OperationID: "getDashboard", Tags: []string{tagDocs}, Summary: "A live dashboard",
		Description: "A page that connects to the WebSocket and shows broker and gateway health, the queue, workers and " +
			"their scripts, calls per second and latency, and the caller's recent tasks. It asks for a token and keeps " +
			"it only in the browser.",
		Security: public(), Responses: openapi3.NewResponses(),
	}
	dash.Responses.Set("200", textResponse("The page.", "text/html"))
	b.addErrors(dash, CodeMethodNotAllowed)
	b.addOp(EndpointDashboard, http.MethodGet, dash)
}

// textResponse is a 200 of a non-JSON media type.
func textResponse(desc, mediaType string) *openapi3.ResponseRef {
	resp := openapi3.NewResponse().WithDescription(desc)
	resp.Content = openapi3.Content{mediaType: &openapi3.MediaType{Schema: openapi3.NewStringSchema().NewRef()}}
	return &openapi3.ResponseRef{Value: resp}
}

// scrapeOp adds POST /scrape.
func (b *specBuilder) scrapeOp() {
	op := &openapi3.Operation{
		OperationID: "scrape", Tags: []string{tagScrape}, Summary: "Run a script and wait for its result",
		Description: "Sends the task to a worker that serves the script (RPC over RabbitMQ) and waits for its reply, " +
			"at most `timeout` seconds. A script that ran and failed is still a 200, with `status: failed` and its " +
			"`error_code`. A client that goes away cancels its task.",
		Security:  authenticated(),
		Responses: openapi3.NewResponses(),
	}
	reqExamples := openapi3.Examples{}
	for _, s := range b.scriptsOrEcho() {
		body := map[string]any{"script_name": s.Name, "parameters": b.parametersExample(s), "timeout": 30}
		summary := s.Name
		if s.Description != "" {
			summary += ": " + s.Description
		}
		reqExamples[s.Name] = example(summary, body)
	}
	op.RequestBody = &openapi3.RequestBodyRef{Value: openapi3.NewRequestBody().
		WithRequired(true).
		WithDescription("The script to run, its parameters and the timeout. The body is decoded strictly: an unknown field is a 422.").
		WithContent(openapi3.Content{"application/json": &openapi3.MediaType{
			Schema:   openapi3.NewSchemaRef(componentRef("ScrapeRequest"), nil),
			Examples: reqExamples,
		}})}

	completed := ScrapeResponse{
		RequestID: exampleRequestID, Status: string(rpc.StatusCompleted),
		Data:          json.RawMessage(`{"url":"https://example.com"}`),
		ExecutionTime: 0.004, CreatedAt: exampleTime, CompletedAt: exampleTime.Add(4 * time.Millisecond),
	}
	msg, code := "TypeError: cannot read properties of undefined", rpc.CodeScriptError
	failed := completed
	failed.Status, failed.Data, failed.Error, failed.ErrorCode = string(rpc.StatusFailed), json.RawMessage("null"), &msg, &code
	op.Responses.Set("200", jsonResponse(
		"The script ran: `status` says whether it completed (`data` is its result) or failed (`error` and `error_code`: "+
			"`"+rpc.CodeScriptError+"`, `"+rpc.CodeScriptTimeout+"`, `"+rpc.CodeOutputTooLarge+"` or `"+rpc.CodeWorkerError+"`).",
		componentRef("ScrapeResponse"), openapi3.Examples{
			"completed": example("The script completed", completed),
			"failed":    example("The script failed", failed),
		}))
	b.addErrors(op,
		CodeMalformedJSON, CodeUnauthorized, CodeForbidden, CodeUnknownScript, CodeUnknownVersion,
		CodeMethodNotAllowed, CodeBodyTooLarge, CodeUnsupportedMediaType, CodeValidationError,
		CodeInvalidParameters, CodeRateLimited, CodeTooManyInFlight, CodeClientClosedRequest,
		CodeInternalError, CodeBrokerUnavailable, CodeNoWorkers, CodeTimeout)
	b.addOp(EndpointScrape, http.MethodPost, op)
}

// scriptsOrEcho returns the live scripts, or (when none is live) the echo
// script every worker serves, so that the examples always show a call.
func (b *specBuilder) scriptsOrEcho() []ScriptDescription {
	if len(b.scripts) > 0 {
		return b.scripts
	}
	return []ScriptDescription{{
		Name: "echo", Versions: []string{"1.0.0"}, Latest: "1.0.0",
		Description:      "Returns its parameters; a numeric sleep_ms makes it wait first.",
		ParametersSchema: json.RawMessage(`{"type":"object"}`),
	}}
}

// echoExample is the parameters example of the echo script.
var echoExample = map[string]any{"url": "https://example.com"}

// parametersExample returns example parameters for a script, from its
// parameter schema.
func (b *specBuilder) parametersExample(s ScriptDescription) any {
	var schema map[string]any
	_ = json.Unmarshal(s.ParametersSchema, &schema)
	ex := exampleFromSchema(schema, 0)
	if s.Name == "echo" && schema["additionalProperties"] != false {
		// echo returns its parameters: show it returning something.
		m, _ := ex.(map[string]any)
		out := map[string]any{}
		for k, v := range echoExample {
			out[k] = v
		}
		for k, v := range m {
			if k != "sleep_ms" {
				out[k] = v
			}
		}
		return out
	}
	if m, ok := ex.(map[string]any); ok {
		return m
	}
	// parameters are an object, whatever the worker's schema says
	return map[string]any{}
}

// exampleFromSchema makes up a value that fits a JSON schema: its examples,
// default, const or first enum value, else one built from its type
// (objects from their properties).
func exampleFromSchema(s map[string]any, depth int) any {
	if s == nil || depth > 6 {
		return nil
	}
	if ex, ok := s["examples"].([]any); ok && len(ex) > 0 {
		return ex[0]
	}
	for _, k := range []string{"example", "default", "const"} {
		if v, ok := s[k]; ok {
			return v
		}
	}
	if enum, ok := s["enum"].([]any); ok && len(enum) > 0 {
		return enum[0]
	}
	typ, _ := s["type"].(string)
	if ts, ok := s["type"].([]any); ok && len(ts) > 0 {
		typ, _ = ts[0].(string)
	}
	props, _ := s["properties"].(map[string]any)
	if typ == "" && props != nil {
		typ = "object"
	}
	switch typ {
	case "object":
		out := map[string]any{}
		for name, p := range props {
			ps, _ := p.(map[string]any)
			if v := exampleFromSchema(ps, depth+1); v != nil {
				out[name] = v
			}
		}
		return out
	case "array":
		items, _ := s["items"].(map[string]any)
		if v := exampleFromSchema(items, depth+1); v != nil {
			return []any{v}
		}
		return []any{}
	case "string":
		switch s["format"] {
		case "uri", "url", "iri":
			return "https://example.com"
		case "date-time":
			return exampleTime.Format(time.RFC3339)
		case "email":
			return "user@example.com"
		}
		return "string"
	case "integer":
		if m, ok := s["minimum"].(float64); ok {
			return int(m)
		}
		return 0
	case "number":
		if m, ok := s["minimum"].(float64); ok {
			return m
		}
		return 0
	case "boolean":
		return false
	}
	return nil
}

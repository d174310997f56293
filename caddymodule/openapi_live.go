package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/scrapegate/scrapegate/rpc"
)

// apiTypes are the Go types whose schemas the document shows, reflected
// into components/schemas under their type names.
var apiTypes = []any{
	ScrapeRequest{}, ScrapeResponse{}, ErrorBody{}, WebSocketMessage{},
	InfoResponse{}, ScriptsResponse{}, rpc.Event{}, HealthResponse{}, StatusResponse{},
	clientMessage{}, subscribedData{}, wsErrorData{},
}

// Component names of the schemas the operations refer to (reflected from
// the types of the same names).
const (
	statusSchemaName = "StatusResponse"
	healthSchemaName = "HealthResponse"
)

// taskEventTypes are the task events a WebSocket subscriber receives.
var taskEventTypes = []string{
	rpc.EventAccepted, rpc.EventStarted, rpc.EventProgress, rpc.EventCompleted,
	rpc.EventFailed, rpc.EventExpired, rpc.EventCancelled,
}

// scriptSchemaName is the component schema of a script's parameters.
func scriptSchemaName(script string) string { return "ScriptParameters." + script }

// scriptSchemas adds each live script's parameter schema as a component
// and lists the scripts in the `x-scripts` extension. A schema that is not
// a valid OpenAPI 3.1 schema is replaced by "any object" (and the reason
// given), so a worker cannot break the document.
func (b *specBuilder) scriptSchemas() {
	list := make([]any, 0, len(b.scripts))
	for _, s := range b.scripts {
		name := scriptSchemaName(s.Name)
		schema, err := scriptParametersSchema(name, s.ParametersSchema)
		if err != nil {
			b.badSchemas[s.Name] = err.Error()
			schema = openapi3.NewObjectSchema()
			schema.Description = "The worker's parameter schema is not a valid OpenAPI 3.1 schema; see x-scripts for it as sent."
		}
		if schema.Title == "" {
			schema.Title = s.Name + " parameters"
		}
		b.doc.Components.Schemas[name] = openapi3.NewSchemaRef("", schema)
		entry := map[string]any{
			"name":              s.Name,
			"versions":          s.Versions,
			"latest":            s.Latest,
			"description":       s.Description,
			"parameters":        map[string]any{"$ref": componentRef(name)},
			"parameters_schema": s.ParametersSchema,
		}
		if why, bad := b.badSchemas[s.Name]; bad {
			entry["parameters_schema_error"] = why
		}
		list = append(list, entry)
	}
	b.doc.Extensions["x-scripts"] = list
}

// scriptParametersSchema loads a worker's parameter schema as the component
// name: its document-local references ("#/$defs/…") are rebased into the
// component, and it must validate as an OpenAPI 3.1 schema.
func scriptParametersSchema(name string, raw json.RawMessage) (*openapi3.Schema, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return openapi3.NewObjectSchema(), nil
	}
	rebased := strings.ReplaceAll(string(raw), `"$ref":"#/`, `"$ref":"`+componentRef(name)+`/`)
	rebased = strings.ReplaceAll(rebased, `"$ref": "#/`, `"$ref": "`+componentRef(name)+`/`)
	schema := new(openapi3.Schema)
	if err := json.Unmarshal([]byte(rebased), schema); err != nil {
		return nil, fmt.Errorf("decoding: %v", err)
	}
	// Check it in a document of its own, the way the whole one is checked.
	doc := &openapi3.T{
		OpenAPI:    OpenAPIVersion,
		Info:       &openapi3.Info{Title: name, Version: "0"},
		Paths:      openapi3.NewPaths(),
		Components: &openapi3.Components{Schemas: openapi3.Schemas{name: openapi3.NewSchemaRef("", schema)}},
	}
	if err := validateSpec(context.Background(), doc); err != nil {
		return nil, err
	}
	return schema, nil
}

// websocketSchemas adds the schemas of the WebSocket messages: one per
// message type, each a WebSocketMessage whose type and data are narrowed,
// and their union.
func (b *specBuilder) websocketSchemas() {
	sc := b.doc.Components.Schemas
	typeEnum := func(values ...string) *openapi3.SchemaRef {
		s := openapi3.NewStringSchema()
		for _, v := range values {
			s.Enum = append(s.Enum, v)
		}
		return s.NewRef()
	}
	ref := func(name string) *openapi3.SchemaRef { return openapi3.NewSchemaRef(componentRef(name), nil) }
	narrow := func(desc string, typ, data *openapi3.SchemaRef) *openapi3.SchemaRef {
		return openapi3.NewSchemaRef("", &openapi3.Schema{
			Description: desc,
			AllOf: openapi3.SchemaRefs{
				ref("WebSocketMessage"),
				openapi3.NewSchemaRef("", &openapi3.Schema{
					Type:       &openapi3.Types{openapi3.TypeObject},
					Properties: openapi3.Schemas{"type": typ, "data": data},
				}),
			},
		})
	}
	for _, m := range wsServerMessages {
		sc[m.schema] = narrow(m.desc, typeEnum(m.types...), ref(m.data))
	}
	union := &openapi3.Schema{
		Description: "Any message the server sends on the WebSocket: one JSON text frame each, told apart by `type`.",
	}
	for _, m := range wsServerMessages {
		union.OneOf = append(union.OneOf, ref(m.schema))
	}
	sc["WebSocketServerMessage"] = openapi3.NewSchemaRef("", union)
}

// wsServerMessage describes one kind of message the server sends.
type wsServerMessage struct {
	schema string   // component name
	types  []string // values of its type
	data   string   // component name of its data
	desc   string
}

// wsServerMessages are the messages of ws_status (see WSStatus).
var wsServerMessages = []wsServerMessage{
	{"WebSocketStatusMessage", []string{"status"}, statusSchemaName,
		"A snapshot of the system status (as GET /status), on connect, then every status interval and when asked for " +
			"with the `status` action. request_id is null. The first snapshot carries the last minutes of `series`."},
	{"WebSocketSubscribedMessage", []string{"subscribed"}, "WebSocketSubscribedData",
		"What the socket now follows: sent on connect and after each subscribe or unsubscribe action " +
			"(request_id names the request the action was about, if any)."},
	{"WebSocketTaskEventMessage", taskEventTypes, "Event",
		"An event of one of the caller's own tasks (an admin sees every client's). request_id is the task's; data is " +
			"the event as workers and gateways publish it."},
	{"WebSocketPongMessage", []string{"pong"}, "WebSocketEmptyData", "The answer to the `ping` action."},
	{"WebSocketErrorMessage", []string{"error"}, "WebSocketErrorData",
		"A client message the server could not carry out (malformed, unknown action, too many subscriptions); " +
			"data is the error body of the HTTP API, with its stable code."},
}

// wsOp adds GET /ws, the WebSocket: the handshake as an operation, and the
// messages as the 101 response's content and the `x-websocket` extension.
func (b *specBuilder) wsOp() {
	b.doc.Components.Schemas["WebSocketEmptyData"] = openapi3.NewSchemaRef("", &openapi3.Schema{
		Type: &openapi3.Types{openapi3.TypeObject}, Description: "An empty object.",
	})
	var desc strings.Builder
	desc.WriteString("Upgrades to a WebSocket (RFC 6455, subprotocol `" + WSSubprotocol + "`) that streams JSON text frames, " +
		"each a `WebSocketMessage` (see `WebSocketServerMessage`):\n\n" +
		"- `status`: a snapshot of the system status (as `GET " + b.path(EndpointStatus) + "`), on connect and then periodically;\n" +
		"- `subscribed`: what the socket follows, on connect and after each change;\n" +
		"- `task.*` (" + strings.Join(taskEventTypes, ", ") + "): events of the caller's own tasks, as they happen;\n" +
		"- `pong`, and `error` for a client message that could not be carried out.\n\n" +
		"The client may send `WebSocketClientMessage`s: `{\"action\": \"subscribe\", \"request_id\": \"…\"}` to follow only " +
		"some requests, `{\"action\": \"subscribe\"}` to follow all its tasks again, `unsubscribe`, `status` and `ping`.\n\n" +
		"Browsers cannot set headers on a WebSocket: offer the token as a subprotocol `" + WebSocketTokenPrefix + "<token>` " +
		"beside `" + WSSubprotocol + "` (the server echoes only the latter), or give it as the `token` query parameter. " +
		"A client that reads too slowly is disconnected (close code 1008); a config reload closes sockets with 1012, and " +
		"clients reconnect.")
	op := &openapi3.Operation{
		OperationID: "streamStatus", Tags: []string{tagLive}, Summary: "WebSocket: live status and the caller's task events",
		Description: desc.String(),
		Security:    authenticated(SchemeWSToken),
		Parameters: openapi3.Parameters{
			{Value: openapi3.NewQueryParameter("token").
				WithDescription("The JWT or API key, for clients that cannot set headers (browsers). It may end up in access logs.").
				WithSchema(openapi3.NewStringSchema())},
			{Value: openapi3.NewHeaderParameter("Sec-WebSocket-Protocol").
				WithDescription("The subprotocols offered: `" + WSSubprotocol + "`, and optionally `" + WebSocketTokenPrefix + "<token>`.").
				WithSchema(openapi3.NewStringSchema())},
		},
		Responses: openapi3.NewResponses(),
	}
	resp := openapi3.NewResponse().WithDescription("Switching Protocols: the WebSocket is open. Its messages are the content below, one per text frame.")
	resp.Content = openapi3.Content{"application/json": &openapi3.MediaType{
		Schema: openapi3.NewSchemaRef(componentRef("WebSocketServerMessage"), nil),
		Examples: openapi3.Examples{
			"task.completed": example("A task of the caller completed", map[string]any{
				"type": rpc.EventCompleted, "request_id": exampleRequestID, "timestamp": exampleTime,
				"data": map[string]any{
					"type": rpc.EventCompleted, "request_id": exampleRequestID, "client_id": "client-1",
					"script_name": "echo", "worker_id": "worker-a-1234", "data": map[string]any{"execution_time": 0.004},
					"timestamp": exampleTime,
				},
			}),
		},
	}}
	op.Responses.Set("101", &openapi3.ResponseRef{Value: resp})
	// (codes missing from the catalogue are skipped)
	b.addErrors(op, CodeUnauthorized, CodeForbidden, CodeMethodNotAllowed, "UPGRADE_REQUIRED")

	messages := map[string]any{}
	for _, m := range wsServerMessages {
		for _, t := range m.types {
			messages[t] = map[string]any{"$ref": componentRef(m.schema)}
		}
	}
	op.Extensions = map[string]any{"x-websocket": map[string]any{
		"subprotocol":     WSSubprotocol,
		"frames":          "text, one JSON object per frame",
		"envelope":        map[string]any{"$ref": componentRef("WebSocketMessage")},
		"server_messages": messages,
		"client_messages": map[string]any{"$ref": componentRef("WebSocketClientMessage")},
		"authentication": []string{
			"Authorization: Bearer <JWT>", "X-API-Key: <key>",
			"Sec-WebSocket-Protocol: " + WSSubprotocol + ", " + WebSocketTokenPrefix + "<token>", "?token=<token>",
		},
	}}
	b.addOp(EndpointWS, http.MethodGet, op)
}

// tags describes the operation groups; the scrape tag lists the live
// scripts.
func (b *specBuilder) tags() {
	var sd strings.Builder
	sd.WriteString("Run scripts on workers.")
	if len(b.scripts) == 0 {
		sd.WriteString(" No live worker advertises a script right now.")
	} else {
		sd.WriteString(" The scripts live workers serve right now:\n\n| script | versions | description |\n|---|---|---|\n")
		for _, s := range b.scripts {
			fmt.Fprintf(&sd, "| `%s` | %s | %s |\n", s.Name, strings.Join(s.Versions, ", "), strings.ReplaceAll(s.Description, "|", `\|`))
		}
	}
	all := []*openapi3.Tag{
		{Name: tagScrape, Description: sd.String()},
		{Name: tagLive, Description: "Live system status and task events."},
		{Name: tagSystem, Description: "Health, identity and metrics of the gateway."},
		{Name: tagDocs, Description: "This document and the pages built on it."},
	}
	used := make(map[string]bool)
	for _, op := range b.ops {
		for _, t := range op.Tags {
			used[t] = true
		}
	}
	for _, t := range all {
		if used[t.Name] {
			b.doc.Tags = append(b.doc.Tags, t)
		}
	}
}

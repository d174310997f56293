package caddymodule

import (
	"encoding/json"
	"time"
)

// ScrapeRequest is the body of POST /scrape. It is decoded strictly: an
// unknown field is a 422 VALIDATION_ERROR that names it.
type ScrapeRequest struct {
	// ScriptName names the script to run: ^[a-zA-Z0-9_-]+$, at most 128 characters.
	ScriptName string `json:"script_name" jsonschema:"required,pattern=^[a-zA-Z0-9_-]+$,maxLength=128" example:"echo"`
	// ScriptVersion asks for one version of the script; the newest when absent or null.
	ScriptVersion *string `json:"script_version,omitempty" jsonschema:"maxLength=64"`
	// Parameters are the script's parameters, checked by the worker against
	// the script's own schema. Default {}.
	Parameters json.RawMessage `json:"parameters,omitempty" jsonschema:"type=object"`
	// Timeout is how long to wait for the result, in whole seconds, 1..3600.
	// Default 300.
	Timeout *int `json:"timeout,omitempty" jsonschema:"minimum=1,maximum=3600,default=300"`
}

// ScrapeResponse is the 200 answer of POST /scrape: the script ran, and
// Status says whether it completed or failed.
type ScrapeResponse struct {
	RequestID     string          `json:"request_id"`
	Status        string          `json:"status" jsonschema:"enum=completed,enum=failed"`
	Data          json.RawMessage `json:"data"`
	Error         *string         `json:"error"`
	ErrorCode     *string         `json:"error_code"`
	ExecutionTime float64         `json:"execution_time"`
	CreatedAt     time.Time       `json:"created_at"`
	CompletedAt   time.Time       `json:"completed_at"`
}

// ErrorBody is the body of every error response.
type ErrorBody struct {
	// Error is the catalogue message, Korean by default, English with Accept-Language: en.
	Error string `json:"error"`
	// Detail says what was wrong, safe to show; for validation errors it names each field.
	Detail string `json:"detail"`
	// Code is the stable machine code of the error.
	Code string `json:"code"`
	// RequestID identifies the request in the gateway's logs.
	RequestID string `json:"request_id,omitempty"`
	// Timestamp is when the error was rendered.
	Timestamp time.Time `json:"timestamp"`
}

// WebSocketMessage is every message sent on the status WebSocket.
type WebSocketMessage struct {
	// Type is "status" (a snapshot), a task event type ("task.started", ...),
	// "subscribed" or "error".
	Type      string          `json:"type"`
	RequestID *string         `json:"request_id"`
	Data      json.RawMessage `json:"data"`
	Timestamp time.Time       `json:"timestamp"`
}

// InfoResponse is the answer of GET /.
type InfoResponse struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Status  string `json:"status"`
}

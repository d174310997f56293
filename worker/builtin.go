package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/Masterminds/semver/v3"
)

// Names of the built-in scripts.
const (
	EchoScript        = "echo"
	HTTPFetchScript   = "http_fetch"
	HTMLExtractScript = "html_extract"
)

// builtin describes a built-in script.
type builtin struct {
	name        string
	description string
	schema      string
	run         func(ctx context.Context, c *call) (json.RawMessage, error)
}

// makeBuiltins compiles the built-ins' schemas.
func (rt *Runtime) makeBuiltins() (map[string]*scriptSet, error) {
	list := []builtin{
		{EchoScript, "Returns its parameters as data; a numeric sleep_ms waits that long first. For health probes and benchmarks.", echoSchema, runEcho},
		{HTTPFetchScript, "Fetches a URL (GET, or POST with a body) and returns the final URL, status, headers and body.", httpFetchSchema, rt.runHTTPFetch},
		{HTMLExtractScript, "Fetches a URL (or takes html inline) and returns the fields named by CSS selectors: text, an attribute, or a list of either.", htmlExtractSchema, rt.runHTMLExtract},
	}
	sets := make(map[string]*scriptSet, len(list))
	for _, b := range list {
		sch, err := compileSchema("builtin/"+b.name, json.RawMessage(b.schema))
		if err != nil {
			return nil, fmt.Errorf("built-in %s: %w", b.name, err)
		}
		sets[b.name] = &scriptSet{name: b.name, versions: []*scriptVersion{{
			name:        b.name,
			version:     builtinVersion,
			semver:      semver.MustParse(builtinVersion),
			description: b.description,
			schemaDoc:   compactJSON(b.schema),
			schema:      sch,
			run:         b.run,
		}}}
	}
	return sets, nil
}

// compactJSON returns s without insignificant white space.
func compactJSON(s string) json.RawMessage {
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		panic("worker: bad built-in JSON: " + err.Error())
	}
	b, _ := json.Marshal(v)
	return b
}

const echoSchema = `{
	"type": "object",
	"properties": {
		"sleep_ms": {"type": "number", "minimum": 0, "description": "Milliseconds to wait before answering."}
	}
}`

// runEcho returns the parameters, after sleep_ms when it is given.
func runEcho(ctx context.Context, c *call) (json.RawMessage, error) {
	var p struct {
		SleepMS float64 `json:"sleep_ms"`
	}
	if err := json.Unmarshal(c.params, &p); err != nil {
		return nil, fmt.Errorf("decoding parameters: %w", err)
	}
	if p.SleepMS > 0 {
		t := time.NewTimer(time.Duration(p.SleepMS * float64(time.Millisecond)))
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, ctxTaskError(ctx)
		}
	}
	return c.params, nil
}

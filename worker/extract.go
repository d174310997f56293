package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/PuerkitoBio/goquery"
	"github.com/andybalholm/cascadia"
	"golang.org/x/net/html/charset"

	"github.com/scrapegate/scrapegate/rpc"
)

const htmlExtractSchema = `{
	"type": "object",
	"properties": {` + fetchProperties + `,
		"html": {"type": "string", "description": "The document, instead of a url to fetch."},
		"selectors": {
			"type": "object",
			"minProperties": 1,
			"description": "Fields to extract, by name: a CSS selector (the trimmed text of the first match), or {selector, attribute, list}.",
			"additionalProperties": {
				"oneOf": [
					{"type": "string", "minLength": 1},
					{
						"type": "object",
						"properties": {
							"selector": {"type": "string", "minLength": 1, "description": "CSS selector."},
							"attribute": {"type": "string", "minLength": 1, "description": "Take this attribute instead of the text."},
							"list": {"type": "boolean", "description": "Take every match (a list) instead of the first (a value or null)."}
						},
						"required": ["selector"],
						"additionalProperties": false
					}
				]
			}
		}
	},
	"required": ["selectors"],
	"anyOf": [{"required": ["url"]}, {"required": ["html"]}],
	"additionalProperties": false
}`

// extractParams are html_extract's parameters.
type extractParams struct {
	fetchParams
	HTML      *string                    `json:"html"`
	Selectors map[string]json.RawMessage `json:"selectors"`
}

// fieldSpec says what to extract for one field.
type fieldSpec struct {
	Selector  string `json:"selector"`
	Attribute string `json:"attribute"`
	List      bool   `json:"list"`

	matcher cascadia.Selector
}

// runHTMLExtract is the html_extract script.
func (rt *Runtime) runHTMLExtract(ctx context.Context, c *call) (json.RawMessage, error) {
	var p extractParams
	if err := json.Unmarshal(c.params, &p); err != nil {
		return nil, &rpc.TaskError{Code: rpc.CodeInvalidParameters, Message: fmt.Sprintf("decoding parameters: %v", err)}
	}
	if p.HTML != nil && p.URL != "" {
		return nil, &rpc.TaskError{Code: rpc.CodeInvalidParameters, Message: "give url or html, not both"}
	}
	specs, err := parseSpecs(p.Selectors)
	if err != nil {
		return nil, err
	}

	out := struct {
		URL    *string        `json:"url,omitempty"`
		Status *int           `json:"status,omitempty"`
		Fields map[string]any `json:"fields"`
	}{Fields: make(map[string]any, len(specs))}
	var doc io.Reader
	if p.HTML != nil {
		doc = strings.NewReader(*p.HTML)
	} else {
		ans, err := rt.fetcher.fetch(ctx, p.fetchParams)
		if err != nil {
			return nil, err
		}
		out.URL, out.Status = &ans.URL, &ans.Status
		doc, err = charset.NewReader(bytes.NewReader(ans.Body), ans.Header.Get("Content-Type"))
		if err != nil {
			return nil, &rpc.TaskError{Code: rpc.CodeScriptError, Message: fmt.Sprintf("decoding the document: %v", err)}
		}
	}
	d, err := goquery.NewDocumentFromReader(doc)
	if err != nil {
		return nil, &rpc.TaskError{Code: rpc.CodeScriptError, Message: fmt.Sprintf("parsing the document: %v", err)}
	}
	for name, spec := range specs {
		out.Fields[name] = spec.extract(d.Selection)
	}
	return json.Marshal(out)
}

// parseSpecs reads and compiles the selectors parameter.
func parseSpecs(raw map[string]json.RawMessage) (map[string]*fieldSpec, error) {
	specs := make(map[string]*fieldSpec, len(raw))
	for name, r := range raw {
		spec := &fieldSpec{}
		if err := json.Unmarshal(r, &spec.Selector); err != nil {
			if err := json.Unmarshal(r, spec); err != nil {
				return nil, &rpc.TaskError{Code: rpc.CodeInvalidParameters, Message: fmt.Sprintf("selectors.%s: %v", name, err)}
			}
		}
		m, err := cascadia.Compile(spec.Selector)
		if err != nil {
			return nil, &rpc.TaskError{Code: rpc.CodeInvalidParameters, Message: fmt.Sprintf("selectors.%s: bad CSS selector %q: %v", name, spec.Selector, err)}
		}
		spec.matcher = m
		specs[name] = spec
	}
	return specs, nil
}

// extract returns the field's value in the document: a string or null, or a
// list of strings (elements without the attribute are left out).
func (f *fieldSpec) extract(root *goquery.Selection) any {
	matches := root.FindMatcher(f.matcher)
	value := func(s *goquery.Selection) (string, bool) {
		if f.Attribute != "" {
			return s.Attr(f.Attribute)
		}
		return strings.TrimSpace(s.Text()), true
	}
	if !f.List {
		if matches.Length() == 0 {
			return nil
		}
		if v, ok := value(matches.First()); ok {
			return v
		}
		return nil
	}
	list := make([]string, 0, matches.Length())
	matches.Each(func(_ int, s *goquery.Selection) {
		if v, ok := value(s); ok {
			list = append(list, v)
		}
	})
	return list
}

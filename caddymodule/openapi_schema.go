package caddymodule

import (
	"embed"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"reflect"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/invopop/jsonschema"
)

// typeSources are the Go files whose types the API shows. They are embedded
// so that the generated schemas carry the types' doc comments as
// descriptions, read from the very source the binary was built from: the
// documentation cannot drift from the code.
//
//go:embed types.go scripts.go health.go status.go stats.go procsample.go hub.go wsstatus.go
var typeSources embed.FS

// packagePath is the import path of this package, the prefix of the keys of
// the comment map (invopop/jsonschema's CommentMap convention).
var packagePath = reflect.TypeFor[ScrapeRequest]().PkgPath()

// foreignComments documents the types of other packages that the API shows
// (their sources are not embeddable from here). Keys follow CommentMap:
// "<import path>.<Type>" and "<import path>.<Type>.<Field>".
var foreignComments = map[string]string{
	"github.com/scrapegate/scrapegate/rpc.ScriptInfo":                  "One script that live workers serve.",
	"github.com/scrapegate/scrapegate/rpc.ScriptInfo.Name":             "The script's name: the script_name of POST /scrape.",
	"github.com/scrapegate/scrapegate/rpc.ScriptInfo.Versions":         "Every version live workers serve, merged across workers.",
	"github.com/scrapegate/scrapegate/rpc.ScriptInfo.Description":      "What the script does.",
	"github.com/scrapegate/scrapegate/rpc.ScriptInfo.ParametersSchema": "The JSON Schema that the script's parameters must satisfy.",
	"github.com/scrapegate/scrapegate/rpc.Event":                       "A task event: the life of one task, as workers and gateways publish it.",
	"github.com/scrapegate/scrapegate/rpc.Event.Type":                  "The event type, also its routing key: task.accepted, task.started, task.progress, task.completed, task.failed, task.expired or task.cancelled.",
	"github.com/scrapegate/scrapegate/rpc.Event.RequestID":             "The request id of the task (the request_id of its POST /scrape).",
	"github.com/scrapegate/scrapegate/rpc.Event.ClientID":              "The authenticated client that asked for the task.",
	"github.com/scrapegate/scrapegate/rpc.Event.ScriptName":            "The script the task runs.",
	"github.com/scrapegate/scrapegate/rpc.Event.WorkerID":              "The worker that runs the task; null for task.accepted, which the gateway publishes.",
	"github.com/scrapegate/scrapegate/rpc.Event.Data":                  "Details of the event: progress, timings, the error code of a failure.",
	"github.com/scrapegate/scrapegate/rpc.Event.Timestamp":             "When the event happened.",
}

// goComments returns the doc comments of the types and exported fields
// declared in fsys's .go files, keyed the way invopop/jsonschema's
// CommentMap expects. A type gets its full doc comment, a field its doc
// comment or, failing that, its line comment.
func goComments(fsys fs.FS, pkgPath string) (map[string]string, error) {
	out := make(map[string]string)
	files, err := fs.Glob(fsys, "*.go")
	if err != nil {
		return nil, fmt.Errorf("listing embedded sources: %v", err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		src, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("reading embedded %s: %v", name, err)
		}
		f, err := parser.ParseFile(fset, name, src, parser.ParseComments)
		if err != nil {
			return nil, fmt.Errorf("parsing embedded %s: %v", name, err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, spec := range gd.Specs {
				ts := spec.(*ast.TypeSpec)
				doc := ts.Doc
				if doc == nil && len(gd.Specs) == 1 {
					doc = gd.Doc
				}
				key := pkgPath + "." + ts.Name.Name
				if txt := cleanComment(doc.Text()); txt != "" {
					out[key] = txt
				}
				st, ok := ts.Type.(*ast.StructType)
				if !ok {
					continue
				}
				for _, field := range st.Fields.List {
					txt := field.Doc.Text()
					if txt == "" {
						txt = field.Comment.Text()
					}
					if txt = cleanComment(txt); txt == "" {
						continue
					}
					for _, n := range field.Names {
						if n.IsExported() {
							out[key+"."+n.Name] = txt
						}
					}
				}
			}
		}
	}
	return out, nil
}

// cleanComment joins a comment's lines into paragraphs: single newlines
// become spaces, blank lines stay paragraph breaks.
func cleanComment(s string) string {
	paras := strings.Split(strings.TrimSpace(s), "\n\n")
	for i, p := range paras {
		paras[i] = strings.Join(strings.Fields(p), " ")
	}
	return strings.Join(paras, "\n\n")
}

// schemaSet reflects Go types into OpenAPI component schemas.
type schemaSet struct {
	reflector *jsonschema.Reflector
	schemas   openapi3.Schemas
	// closed names the types whose objects admit no other property (bodies
	// the gateway decodes strictly).
	closed map[reflect.Type]bool
}

// newSchemaSet returns a schemaSet whose descriptions come from comments.
func newSchemaSet(comments map[string]string) *schemaSet {
	merged := make(map[string]string, len(comments)+len(foreignComments))
	for k, v := range foreignComments {
		merged[k] = v
	}
	for k, v := range comments {
		merged[k] = v
	}
	return &schemaSet{
		reflector: &jsonschema.Reflector{
			AllowAdditionalProperties: true,
			CommentMap:                merged,
			Namer:                     schemaName,
		},
		schemas: make(openapi3.Schemas),
		closed:  make(map[reflect.Type]bool),
	}
}

// componentRef returns the reference to the component schema name.
func componentRef(name string) string { return "#/components/schemas/" + name }

// add reflects v's type (and every named struct type it uses) into
// component schemas, and returns a reference to its component.
func (ss *schemaSet) add(v any) (*openapi3.SchemaRef, error) {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	root := ss.reflector.ReflectFromType(t)
	types := make(map[string]reflect.Type)
	collectStructTypes(t, types)
	for name, def := range root.Definitions {
		s, err := toOpenAPISchema(def)
		if err != nil {
			return nil, fmt.Errorf("converting schema %s: %v", name, err)
		}
		if gt, ok := types[name]; ok {
			ss.refine(gt, s)
		}
		ss.schemas[name] = openapi3.NewSchemaRef("", s)
	}
	return openapi3.NewSchemaRef(componentRef(schemaName(t)), nil), nil
}

// schemaNames renames the unexported Go types the API shows.
var schemaNames = map[reflect.Type]string{
	reflect.TypeFor[clientMessage]():  "WebSocketClientMessage",
	reflect.TypeFor[subscribedData](): "WebSocketSubscribedData",
	reflect.TypeFor[wsErrorData]():    "WebSocketErrorData",
}

// schemaName is the component name of a Go type: its name, or its public
// name when it is unexported.
func schemaName(t reflect.Type) string {
	if n, ok := schemaNames[t]; ok {
		return n
	}
	return t.Name()
}

// toOpenAPISchema converts a reflected JSON Schema into an OpenAPI 3.1
// schema whose references point into components/schemas.
func toOpenAPISchema(s *jsonschema.Schema) (*openapi3.Schema, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	b = []byte(strings.ReplaceAll(string(b), `"#/$defs/`, `"#/components/schemas/`))
	out := new(openapi3.Schema)
	if err := json.Unmarshal(b, out); err != nil {
		return nil, err
	}
	return out, nil
}

// refine adds what JSON tags cannot say to the schema of struct type t:
// pointer fields are nullable, `example:"…"` tags become examples, raw JSON
// fields say they take any value, and closed types admit no extra property.
func (ss *schemaSet) refine(t reflect.Type, s *openapi3.Schema) {
	if ss.closed[t] {
		s.AdditionalProperties = openapi3.AdditionalProperties{Has: openapi3.Ptr(false)}
	}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		prop := s.Properties[name]
		if prop == nil {
			continue
		}
		if prop.Value != nil && prop.Value.Always != nil && *prop.Value.Always {
			// A json.RawMessage: any JSON value. Say so in an object schema,
			// which every reader understands, rather than a bare `true`.
			prop.Value = &openapi3.Schema{Description: "Any JSON value."}
		}
		if ex, ok := f.Tag.Lookup("example"); ok && prop.Value != nil {
			prop.Value.Examples = []any{ex}
		}
		// The decoder takes null for a pointer, and the encoder writes null
		// for a nil one unless omitempty leaves it out.
		if f.Type.Kind() == reflect.Pointer {
			makeNullable(prop)
		}
	}
}

// makeNullable lets a property's schema accept null as well.
func makeNullable(prop *openapi3.SchemaRef) {
	if prop.Ref != "" {
		// A reference cannot take siblings that change its type: wrap it.
		*prop = *openapi3.NewSchemaRef("", &openapi3.Schema{
			AnyOf: openapi3.SchemaRefs{
				openapi3.NewSchemaRef(prop.Ref, nil),
				openapi3.NewSchemaRef("", &openapi3.Schema{Type: &openapi3.Types{openapi3.TypeNull}}),
			},
		})
		return
	}
	v := prop.Value
	if v == nil || v.Type == nil || v.Type.Includes(openapi3.TypeNull) {
		return
	}
	t := append(openapi3.Types{}, *v.Type...)
	t = append(t, openapi3.TypeNull)
	v.Type = &t
}

// collectStructTypes records t and every named struct type reachable from
// its fields, by component name.
func collectStructTypes(t reflect.Type, out map[string]reflect.Type) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t.Name() == "" || t.PkgPath() == "time" {
		return
	}
	if _, seen := out[schemaName(t)]; seen {
		return
	}
	out[schemaName(t)] = t
	for i := range t.NumField() {
		collectStructTypes(t.Field(i).Type, out)
	}
}

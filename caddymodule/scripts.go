package caddymodule

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/scrapegate/scrapegate/rpc"
)

func init() {
	caddy.RegisterModule(new(ScrapeScripts))
}

// ScrapeScripts is the http.handlers.scrape_scripts module: GET (or HEAD)
// answers the list of scripts that live workers advertise in their
// heartbeats, with their versions, descriptions and parameter schemas, as
// a ScriptsResponse. It reads the list from the `scrapegate` app's broker
// link at every request, so it follows workers as they come and go.
//
// It does no authentication of its own: mount it behind `jwt_auth`, as the
// example Caddyfile does. Other methods fail with 405 METHOD_NOT_ALLOWED.
type ScrapeScripts struct {
	// scripts returns what live workers advertise (the app's rpc client).
	scripts func() []rpc.ScriptInfo
	logger  *zap.Logger
}

// ScriptsResponse is the answer of GET /scripts: the scripts live workers
// serve right now.
type ScriptsResponse struct {
	// Scripts lists the scripts, sorted by name.
	Scripts []ScriptDescription `json:"scripts"`
	// Count is the number of scripts.
	Count int `json:"count"`
	// Timestamp is when the list was taken.
	Timestamp time.Time `json:"timestamp"`
}

// ScriptDescription is one script that live workers serve.
type ScriptDescription struct {
	// Name is the script's name: the script_name of POST /scrape.
	Name string `json:"name" example:"echo"`
	// Versions lists every version live workers serve, newest first.
	Versions []string `json:"versions"`
	// Latest is the version a call gets when it names none.
	Latest string `json:"latest" example:"1.0.0"`
	// Description says what the script does.
	Description string `json:"description"`
	// ParametersSchema is the JSON Schema that the parameters of a call of
	// this script must satisfy; a call whose parameters fail it is answered
	// 422 INVALID_PARAMETERS.
	ParametersSchema json.RawMessage `json:"parameters_schema"`
}

// CaddyModule returns the Caddy module information.
func (*ScrapeScripts) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.scrape_scripts",
		New: func() caddy.Module { return new(ScrapeScripts) },
	}
}

// Provision gets the scripts source from the `scrapegate` app (loading it
// with its defaults when the config has none). No network I/O.
func (h *ScrapeScripts) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if h.scripts != nil {
		return nil
	}
	src, err := appScripts(ctx)
	if err != nil {
		return err
	}
	h.scripts = src
	return nil
}

// ServeHTTP answers the scripts list.
func (h *ScrapeScripts) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return Error(CodeMethodNotAllowed, fmt.Sprintf("%s is not allowed here; use GET", r.Method), nil)
	}
	list := describeScripts(h.scripts())
	body, err := json.Marshal(ScriptsResponse{Scripts: list, Count: len(list), Timestamp: now().UTC()})
	if err != nil {
		return Error(CodeInternalError, "", fmt.Errorf("encoding scripts list: %v", err))
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return nil
	}
	_, err = w.Write(append(body, '\n'))
	return err
}

// appScripts returns the function that lists the scripts live workers
// advertise: the rpc client of the `scrapegate` app.
func appScripts(ctx caddy.Context) (func() []rpc.ScriptInfo, error) {
	v, err := ctx.App(AppID)
	if err != nil {
		return nil, fmt.Errorf("loading the %s app: %v", AppID, err)
	}
	app, ok := v.(*App)
	if !ok {
		return nil, fmt.Errorf("loading the %s app: unexpected type %T", AppID, v)
	}
	client := app.Client()
	if client == nil {
		return nil, fmt.Errorf("the %s app has no broker client", AppID)
	}
	return client.Scripts, nil
}

// describeScripts turns what workers advertise into the public list:
// sorted by name, versions newest first (semantic versions by precedence,
// others after them in reverse lexical order), duplicates removed, and a
// missing parameters schema shown as "any object".
func describeScripts(in []rpc.ScriptInfo) []ScriptDescription {
	out := make([]ScriptDescription, 0, len(in))
	for _, s := range in {
		versions := sortVersions(s.Versions)
		d := ScriptDescription{
			Name:             s.Name,
			Versions:         versions,
			Description:      s.Description,
			ParametersSchema: s.ParametersSchema,
		}
		if len(versions) > 0 {
			d.Latest = versions[0]
		}
		if len(d.ParametersSchema) == 0 || string(d.ParametersSchema) == "null" {
			d.ParametersSchema = json.RawMessage(`{"type":"object"}`)
		}
		out = append(out, d)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// sortVersions returns the distinct versions, newest first.
func sortVersions(in []string) []string {
	out := make([]string, 0, len(in))
	for _, v := range in {
		if v = strings.TrimSpace(v); v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, errA := semver.NewVersion(out[i])
		b, errB := semver.NewVersion(out[j])
		switch {
		case errA == nil && errB == nil:
			return a.GreaterThan(b)
		case errA == nil:
			return true
		case errB == nil:
			return false
		default:
			return out[i] > out[j]
		}
	})
	return out
}

// Interface guards
var (
	_ caddy.Provisioner           = (*ScrapeScripts)(nil)
	_ caddyhttp.MiddlewareHandler = (*ScrapeScripts)(nil)
)

package caddymodule

import (
	"fmt"
	"net/http"
	"slices"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
)

func init() {
	caddy.RegisterModule(new(JWTAuth))
}

// JWTAuth is the `jwt_auth` handler (`http.handlers.jwt_auth`): it lets a
// request through only when one of its authentication providers accepts
// its credential, and sets the authenticated user exactly as Caddy's own
// `authentication` handler does:
//
//	placeholder                 value
//	{http.auth.user.id}         the client id (what rate_limit, scrape_in_flight and access logs key on)
//	{http.auth.user.role}       the client's role, when it has one
//	{http.auth.user.auth_method} "jwt" or "api_key"
//	{http.auth.user.<claim>}    each claim named in the JWT provider's user_claims
//
// The providers are caddyauth providers (namespace
// http.authentication.providers): scrapegate_jwt (bearer tokens) and
// scrapegate_api_key (X-API-Key), or any other. It differs from the
// `authentication` handler in what a refusal carries: caddyauth answers
// every refusal with the same bare 401 "not authenticated", and logs a
// provider's error at error level. jwt_auth returns a 401 UNAUTHORIZED
// error (caddymodule.Error) whose detail says what was wrong with the
// credential (missing, malformed, expired, wrong type, unknown key, ...;
// never a secret), with a `WWW-Authenticate: Bearer realm="…",
// error="invalid_token", error_description="…"` header; scrape_error in
// handle_errors renders it as the JSON error body. Refusals are logged at
// debug level only.
//
// Providers that know this package's interface are asked only when the
// request carries their kind of credential (so an X-API-Key is never
// reported as a bad bearer token); providers are tried in the order of
// their names, and the first that accepts wins. A request with no
// credential at all gets the challenge without an error attribute (RFC
// 6750, 3.1).
type JWTAuth struct {
	// The authentication providers, by module name.
	ProvidersRaw caddy.ModuleMap `json:"providers,omitempty" caddy:"namespace=http.authentication.providers"`

	providers []namedAuthenticator
	realm     string // of the first provider of this package
	logger    *zap.Logger
}

// namedAuthenticator is a provisioned provider and its module name.
type namedAuthenticator struct {
	name string
	auth caddyauth.Authenticator
}

// credentialVerifier is implemented by this package's providers. Unlike
// caddyauth.Authenticator, it says why a credential was refused.
type credentialVerifier interface {
	// hasCredential reports whether r carries the provider's kind of
	// credential.
	hasCredential(r *http.Request) bool
	// verify checks r's credential and returns the user, or a non-empty
	// reason, safe to show to the client, why it was refused. An error
	// means a fault of the gateway, not of the credential.
	verify(r *http.Request) (user caddyauth.User, reason string, err error)
	// realm is the realm of the provider's challenge.
	realm() string
}

// CaddyModule returns the Caddy module information.
func (*JWTAuth) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.jwt_auth",
		New: func() caddy.Module { return new(JWTAuth) },
	}
}

// Provision loads the providers.
func (h *JWTAuth) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if len(h.ProvidersRaw) == 0 {
		return fmt.Errorf("no authentication providers: configure a secret, public keys, a JWKS or API keys")
	}
	mods, err := ctx.LoadModule(h, "ProvidersRaw")
	if err != nil {
		return fmt.Errorf("loading authentication providers: %v", err)
	}
	h.providers = h.providers[:0]
	for name, mod := range mods.(map[string]any) {
		auth, ok := mod.(caddyauth.Authenticator)
		if !ok {
			return fmt.Errorf("provider %s is not a caddyauth.Authenticator", name)
		}
		h.providers = append(h.providers, namedAuthenticator{name: name, auth: auth})
	}
	slices.SortFunc(h.providers, func(a, b namedAuthenticator) int {
		switch {
		case a.name < b.name:
			return -1
		case a.name > b.name:
			return 1
		}
		return 0
	})
	h.realm = DefaultAuthRealm
	for _, p := range h.providers {
		if v, ok := p.auth.(credentialVerifier); ok {
			h.realm = v.realm()
			break
		}
	}
	return nil
}

// ServeHTTP authenticates r and calls next, or returns the 401 error.
func (h *JWTAuth) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	reason, realm := "", h.realm
	for _, p := range h.providers {
		var user caddyauth.User
		var ok bool
		var err error
		if v, mine := p.auth.(credentialVerifier); mine {
			if !v.hasCredential(r) {
				continue
			}
			var why string
			user, why, err = v.verify(r)
			ok = err == nil && why == ""
			if why != "" && reason == "" {
				reason, realm = why, v.realm()
			}
		} else {
			user, ok, err = p.auth.Authenticate(w, r)
			if !ok && err == nil && reason == "" {
				reason = "not authenticated"
			}
		}
		if err != nil {
			return Error(CodeInternalError, "", fmt.Errorf("authentication provider %s: %w", p.name, err))
		}
		if ok {
			repl.Set("http.auth.user.id", user.ID)
			for k, v := range user.Metadata {
				repl.Set("http.auth.user."+k, v)
			}
			return next.ServeHTTP(w, r)
		}
	}
	if reason == "" {
		reason = reasonMissing
	}
	w.Header().Set("WWW-Authenticate", bearerChallenge(realm, reason))
	if c := h.logger.Check(zapcore.DebugLevel, "credential refused"); c != nil {
		c.Write(zap.String("reason", reason), zap.String("remote_ip", r.RemoteAddr))
	}
	return Error(CodeUnauthorized, reason, nil)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*JWTAuth)(nil)
	_ caddyhttp.MiddlewareHandler = (*JWTAuth)(nil)
)

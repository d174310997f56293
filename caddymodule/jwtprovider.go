package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
)

func init() {
	caddy.RegisterModule(new(JWTProvider))
}

// Defaults of JWTProvider.
const (
	DefaultJWTAlgorithm     = "HS256"
	DefaultClientIDClaim    = "client_id"
	DefaultRoleClaim        = "role"
	DefaultMaxTokenSize     = 8 << 10
	DefaultJWKSRefresh      = 5 * time.Minute
	DefaultAuthRealm        = "scrapegate"
	accessTokenType         = "access"
	minRecommendedSecretLen = 32
	// jwtCacheSize bounds the verified-token cache of one provider.
	jwtCacheSize = 4096
)

// jwtNow is the clock tokens are checked against (tests replace it).
var jwtNow = time.Now

// JWTProvider authenticates `Authorization: Bearer <JWT>` access tokens
// (and, on a WebSocket upgrade without an Authorization header, the token of
// a `bearer.<token>` subprotocol or a `token` query parameter: see
// WebSocketToken). It
// is the caddyauth provider `http.authentication.providers.scrapegate_jwt`
// (not `...providers.jwt`, which another plugin registers), used by the
// jwt_auth handler and usable in Caddy's own `authentication` handler too.
//
// A token is accepted when all of these hold:
//   - it is at most max_token_size bytes and has three base64url parts;
//   - its alg header is the one algorithm of a configured key: keys are
//     pinned to one algorithm each, so `none` and algorithm confusion (an
//     RS256 header on a token signed with an HMAC of the public key) are
//     refused; a kid header picks the keys of that kid;
//   - the signature verifies;
//   - exp is present and not past, nbf and iat are not in the future (each
//     with the configured leeway), and iss/aud match when configured;
//   - the claim "type" is "access";
//   - the client id claim is a non-empty string.
//
// The user it returns has the client id as ID and the metadata
// `auth_method` ("jwt"), `role` (from the role claim, when the token has
// one) and one entry per user_claims name; the authentication handler makes
// them the placeholders {http.auth.user.id}, {http.auth.user.role}, ...
//
// Tokens that verified are remembered (at most 4096 per provider, only
// while now is within their nbf/iat..exp window, leeway included, and only
// while the JWKS keys are those they were verified with), so a client that
// sends the same token on every request pays the parsing and signature
// check once. Refusals are never remembered.
//
// Refused tokens are client errors: Authenticate returns false and sets
// `WWW-Authenticate: Bearer realm="…", error="invalid_token",
// error_description="<reason>"`, logging nothing above debug level. An
// error is returned only for faults of the gateway.
type JWTProvider struct {
	// The HMAC secret that signs HS256 (or HS384/HS512) tokens. Placeholders
	// are resolved when the config is loaded, so write `{env.JWT_SECRET_KEY}`
	// to keep the secret out of the config. A secret that resolves to the
	// empty string while no other key is configured is a config error: there
	// is no unauthenticated fallback. Secrets shorter than 32 bytes are
	// accepted with a warning.
	Secret string `json:"secret,omitempty"`

	// The algorithm of Secret: HS256 (default), HS384 or HS512.
	Algorithm string `json:"algorithm,omitempty"`

	// Public keys from PEM files (PKIX "PUBLIC KEY", PKCS#1 "RSA PUBLIC KEY"
	// or a "CERTIFICATE"), each pinned to one algorithm.
	PublicKeys []JWTPublicKey `json:"public_keys,omitempty"`

	// JWKS files (RFC 7517 key sets). They are read when the config is
	// loaded (a missing or unusable file is a config error), re-read every
	// jwks_refresh when they changed, and at once when a token names a kid
	// that no key has, so keys can be rotated by rewriting the file: add the
	// new key, start signing with it, remove the old key later. A file that
	// fails to parse keeps its previous keys. Symmetric ("oct") keys are
	// never taken from a key set. Placeholders are resolved.
	JWKSFiles []string `json:"jwks_files,omitempty"`

	// JWKS URLs, downloaded when the first token needs them (never while
	// the config is loaded), then every jwks_refresh, and when a token
	// names an unknown kid (at most every 10s). A failed download keeps the
	// previous keys. Placeholders are resolved.
	JWKSURLs []string `json:"jwks_urls,omitempty"`

	// How often JWKS files and URLs are refreshed. Default: 5m.
	JWKSRefresh caddy.Duration `json:"jwks_refresh,omitempty"`

	// Clock skew tolerated when checking exp, nbf and iat. Default: 0.
	Leeway caddy.Duration `json:"leeway,omitempty"`

	// If set, the iss claim must equal it.
	Issuer string `json:"issuer,omitempty"`

	// If set, the aud claim must hold at least one of these audiences.
	Audience []string `json:"audience,omitempty"`

	// The claim that holds the client id, which becomes the user id (what
	// rate limits, logs and event filtering key on). It must be a non-empty
	// string. Default: client_id.
	ClientIDClaim string `json:"client_id_claim,omitempty"`

	// The claim that holds the client's role (a string), exposed as the
	// user metadata "role" ({http.auth.user.role}); ws_status gives "admin"
	// every client's events. Default: role.
	RoleClaim string `json:"role_claim,omitempty"`

	// Further claims to expose as user metadata, i.e. placeholders
	// {http.auth.user.<claim>}. Strings are taken as they are, other values
	// as JSON.
	UserClaims []string `json:"user_claims,omitempty"`

	// Tokens longer than this many bytes are refused before any parsing.
	// Default: 8192.
	MaxTokenSize int `json:"max_token_size,omitempty"`

	// The realm of the WWW-Authenticate challenge. Default: scrapegate.
	Realm string `json:"realm,omitempty"`

	static *keySet
	jwks   *jwksSource
	parser []jwt.ParserOption
	logger *zap.Logger
	cache  *tokenCache // nil: no caching
}

// JWTPublicKey is one public key file of JWTProvider.
type JWTPublicKey struct {
	// Path of the PEM file. Placeholders are resolved.
	File string `json:"file"`

	// The one algorithm tokens verified with this key may use: RS256,
	// RS384, RS512, PS256, PS384, PS512 for RSA keys (default RS256),
	// ES256/ES384/ES512 for P-256/P-384/P-521 keys, EdDSA for Ed25519.
	// Default: that of the key's type.
	Algorithm string `json:"algorithm,omitempty"`

	// The key id: tokens whose kid header names it are verified with it.
	// Tokens with no kid, or a kid no key has, are tried with the keys that
	// have no kid.
	KID string `json:"kid,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (*JWTProvider) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.authentication.providers.scrapegate_jwt",
		New: func() caddy.Module { return new(JWTProvider) },
	}
}

// Provision fills in defaults, resolves placeholders and loads the keys
// (files only: no network I/O).
func (p *JWTProvider) Provision(ctx caddy.Context) error {
	p.logger = ctx.Logger()
	p.cache = newTokenCache(jwtCacheSize)
	if p.Algorithm == "" {
		p.Algorithm = DefaultJWTAlgorithm
	}
	if p.ClientIDClaim == "" {
		p.ClientIDClaim = DefaultClientIDClaim
	}
	if p.RoleClaim == "" {
		p.RoleClaim = DefaultRoleClaim
	}
	if p.MaxTokenSize == 0 {
		p.MaxTokenSize = DefaultMaxTokenSize
	}
	if p.JWKSRefresh == 0 {
		p.JWKSRefresh = caddy.Duration(DefaultJWKSRefresh)
	}
	if p.Realm == "" {
		p.Realm = DefaultAuthRealm
	}
	if err := p.Validate(); err != nil {
		return err
	}
	repl := caddy.NewReplacer()

	p.static = new(keySet)
	if secret := repl.ReplaceKnown(p.Secret, ""); secret != "" {
		if len(secret) < minRecommendedSecretLen {
			p.logger.Warn("jwt secret is short; use at least 32 random bytes",
				zap.Int("length", len(secret)))
		}
		p.static.keys = append(p.static.keys, verificationKey{alg: p.Algorithm, key: []byte(secret)})
	}
	for i, pk := range p.PublicKeys {
		file := repl.ReplaceKnown(pk.File, "")
		data, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("public_keys %d: reading %s: %v", i, file, err)
		}
		vk, err := parsePublicKeyPEM(data, pk.Algorithm, pk.KID)
		if err != nil {
			return fmt.Errorf("public_keys %d (%s): %v", i, file, err)
		}
		p.static.keys = append(p.static.keys, vk)
	}

	var files, urls []string
	for _, f := range p.JWKSFiles {
		if f = repl.ReplaceKnown(f, ""); f != "" {
			files = append(files, f)
		}
	}
	for i, u := range p.JWKSURLs {
		if u = repl.ReplaceKnown(u, ""); u == "" {
			continue
		}
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" {
			return fmt.Errorf("jwks_urls %d: not an http(s) URL", i)
		}
		urls = append(urls, u)
	}
	if len(files)+len(urls) > 0 {
		src, err := newJWKSSource(ctx, files, urls, time.Duration(p.JWKSRefresh), p.logger)
		if err != nil {
			return err
		}
		p.jwks = src
	}

	if len(p.static.keys) == 0 && p.jwks == nil {
		if p.Secret != "" {
			return errors.New("secret is empty (is its environment variable set?) and no public_keys, jwks_files or jwks_urls are configured: refusing to run without a verification key")
		}
		return errors.New("no verification key: configure secret, public_keys, jwks_files or jwks_urls")
	}

	p.parser = []jwt.ParserOption{
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(time.Duration(p.Leeway)),
		jwt.WithTimeFunc(func() time.Time { return jwtNow() }),
	}
	if p.Issuer != "" {
		p.parser = append(p.parser, jwt.WithIssuer(p.Issuer))
	}
	if len(p.Audience) > 0 {
		p.parser = append(p.parser, jwt.WithAudience(p.Audience...))
	}
	return nil
}

// Validate checks the configuration.
func (p *JWTProvider) Validate() error {
	if p.Algorithm != "" && !slices.Contains(hmacAlgorithms, p.Algorithm) {
		return fmt.Errorf("algorithm: %q is not an HMAC algorithm (HS256, HS384, HS512); configure public_keys or a JWKS for %s", p.Algorithm, p.Algorithm)
	}
	for i, pk := range p.PublicKeys {
		if pk.File == "" {
			return fmt.Errorf("public_keys %d: file is required", i)
		}
		if pk.Algorithm != "" && !slices.Contains(knownAlgorithms, pk.Algorithm) || slices.Contains(hmacAlgorithms, pk.Algorithm) {
			return fmt.Errorf("public_keys %d: unsupported algorithm %q", i, pk.Algorithm)
		}
	}
	if p.Leeway < 0 {
		return errors.New("leeway: must not be negative")
	}
	if p.JWKSRefresh < 0 {
		return errors.New("jwks_refresh: must not be negative")
	}
	if p.MaxTokenSize < 0 {
		return errors.New("max_token_size: must not be negative")
	}
	for _, c := range p.UserClaims {
		if c == "" || c == "id" {
			return fmt.Errorf("user_claims: %q cannot be a user metadata key", c)
		}
	}
	return nil
}

// Authenticate implements caddyauth.Authenticator: it verifies the bearer
// token of r. A refused token sets the WWW-Authenticate challenge and
// returns false with no error.
func (p *JWTProvider) Authenticate(w http.ResponseWriter, r *http.Request) (caddyauth.User, bool, error) {
	user, reason, err := p.verify(r)
	if err != nil {
		return caddyauth.User{}, false, err
	}
	if reason != "" {
		w.Header().Set("WWW-Authenticate", bearerChallenge(p.Realm, reason))
		return caddyauth.User{}, false, nil
	}
	return user, true, nil
}

// Cleanup stops the JWKS refresher.
func (p *JWTProvider) Cleanup() error {
	if p.jwks != nil {
		p.jwks.close()
	}
	return nil
}

// realm returns the realm of the provider's challenge.
func (p *JWTProvider) realm() string { return p.Realm }

// hasCredential reports whether r has an Authorization header, or is a
// WebSocket upgrade with a token in place of one (see WebSocketToken).
func (p *JWTProvider) hasCredential(r *http.Request) bool {
	return len(r.Header.Values("Authorization")) > 0 || WebSocketToken(r) != ""
}

// verify checks the bearer token of r. It returns the user, or the reason
// (safe to show to the client) why the credential is refused.
func (p *JWTProvider) verify(r *http.Request) (caddyauth.User, string, error) {
	vals := r.Header.Values("Authorization")
	switch {
	case len(vals) == 0:
		// browsers cannot set headers on a WebSocket: a token may come as a
		// subprotocol or a query parameter of the upgrade request
		if token := WebSocketToken(r); token != "" {
			return p.verifyToken(r.Context(), token)
		}
		return caddyauth.User{}, reasonMissing, nil
	case len(vals) > 1:
		return caddyauth.User{}, "more than one Authorization header", nil
	case len(vals[0]) > p.MaxTokenSize+len("Bearer "):
		return caddyauth.User{}, fmt.Sprintf("token too large (more than %d bytes)", p.MaxTokenSize), nil
	}
	scheme, token, _ := strings.Cut(strings.TrimSpace(vals[0]), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return caddyauth.User{}, "the Authorization header must be Bearer <token>", nil
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return caddyauth.User{}, "empty bearer token", nil
	}
	return p.verifyToken(r.Context(), token)
}

// verifyToken checks one token; see verify.
func (p *JWTProvider) verifyToken(ctx context.Context, token string) (caddyauth.User, string, error) {
	if len(token) > p.MaxTokenSize {
		return caddyauth.User{}, fmt.Sprintf("token too large (more than %d bytes)", p.MaxTokenSize), nil
	}
	// the JWKS keys before the verification: the result is cached only if
	// they are still current after it, so it was verified with them
	gen := p.jwksKeys()
	if user, ok := p.cache.get(token, jwtNow(), gen); ok {
		return user, "", nil
	}
	alg, kid, reason := tokenHeader(token)
	if reason != "" {
		return caddyauth.User{}, reason, nil
	}

	keys, reason := p.keysFor(ctx, alg, kid)
	if reason != "" {
		return caddyauth.User{}, reason, nil
	}

	claims := jwt.MapClaims{}
	opts := append([]jwt.ParserOption{jwt.WithValidMethods([]string{alg})}, p.parser...)
	_, err := jwt.NewParser(opts...).ParseWithClaims(token, claims, func(*jwt.Token) (any, error) {
		if len(keys) == 1 {
			return keys[0], nil
		}
		vks := jwt.VerificationKeySet{Keys: make([]jwt.VerificationKey, len(keys))}
		for i, k := range keys {
			vks.Keys[i] = k
		}
		return vks, nil
	})
	if err != nil {
		return caddyauth.User{}, p.tokenErrorReason(err, claims), nil
	}

	if typ, _ := claims["type"].(string); typ != accessTokenType {
		return caddyauth.User{}, "token type must be access", nil
	}
	clientID, _ := claims[p.ClientIDClaim].(string)
	if clientID == "" {
		return caddyauth.User{}, "token has no client id (claim " + p.ClientIDClaim + ")", nil
	}
	user := caddyauth.User{ID: clientID, Metadata: map[string]string{"auth_method": "jwt"}}
	if role, ok := claims[p.RoleClaim].(string); ok && role != "" {
		user.Metadata["role"] = role
	}
	for _, c := range p.UserClaims {
		if v, ok := claims[c]; ok {
			user.Metadata[c] = claimString(v)
		}
	}
	if from, until, ok := p.validity(claims); ok && p.jwksKeys() == gen {
		p.cache.put(token, cachedToken{user: user, from: from, until: until, keys: gen}, jwtNow())
	}
	return user, "", nil
}

// jwksKeys returns the current JWKS keys (nil without a JWKS). A JWKS
// refresh that changed the keys publishes a new set, so a cached token is
// tied to the set it was verified with and is not served once another set
// is current.
func (p *JWTProvider) jwksKeys() *keySet {
	if p.jwks == nil {
		return nil
	}
	return p.jwks.keys.Load()
}

// validity returns the span in which the claims of a verified token pass
// the parser's time checks: from max(nbf, iat) - leeway (inclusive) to exp +
// leeway (exclusive), exactly as golang-jwt compares them.
func (p *JWTProvider) validity(claims jwt.MapClaims) (from, until time.Time, ok bool) {
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil {
		return time.Time{}, time.Time{}, false
	}
	leeway := time.Duration(p.Leeway)
	until = exp.Add(leeway)
	for _, get := range []func() (*jwt.NumericDate, error){claims.GetNotBefore, claims.GetIssuedAt} {
		d, err := get()
		if err != nil {
			return time.Time{}, time.Time{}, false
		}
		if d != nil && d.Add(-leeway).After(from) {
			from = d.Add(-leeway)
		}
	}
	return from, until, true
}

// tokenCache remembers tokens that verified: the exact token string maps to
// the user it authenticated and the span it is valid in. It holds at most
// max entries and is safe for concurrent use.
type tokenCache struct {
	max int

	mu      sync.RWMutex
	keys    *keySet // the JWKS keys of the entries
	entries map[string]cachedToken
}

// cachedToken is one verified token.
type cachedToken struct {
	user        caddyauth.User
	from, until time.Time // valid while from <= now < until
	keys        *keySet   // the JWKS keys it was verified with
}

// newTokenCache returns a cache of at most size tokens.
func newTokenCache(size int) *tokenCache {
	return &tokenCache{max: size, entries: make(map[string]cachedToken, min(size, 64))}
}

// get returns the user of token if it verified with the JWKS keys keys and
// now is within its validity. A nil cache has nothing.
func (c *tokenCache) get(token string, now time.Time, keys *keySet) (caddyauth.User, bool) {
	if c == nil {
		return caddyauth.User{}, false
	}
	c.mu.RLock()
	e, ok := c.entries[token]
	c.mu.RUnlock()
	if !ok {
		return caddyauth.User{}, false
	}
	if e.keys != keys || now.Before(e.from) || !now.Before(e.until) {
		if e.keys != keys || !now.Before(e.until) {
			c.mu.Lock()
			if cur, ok := c.entries[token]; ok && cur.until.Equal(e.until) && cur.keys == e.keys {
				delete(c.entries, token)
			}
			c.mu.Unlock()
		}
		return caddyauth.User{}, false
	}
	user := e.user
	user.Metadata = maps.Clone(e.user.Metadata)
	return user, true
}

// put remembers a verified token. When e was verified with other JWKS keys
// than the entries, the entries are dropped first; when the cache is full,
// an entry expired at now, else an arbitrary one, makes room.
func (c *tokenCache) put(token string, e cachedToken, now time.Time) {
	if c == nil || c.max <= 0 {
		return
	}
	e.user.Metadata = maps.Clone(e.user.Metadata)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.keys != e.keys {
		clear(c.entries)
		c.keys = e.keys
	}
	if _, ok := c.entries[token]; !ok && len(c.entries) >= c.max {
		// map iteration starts at a random entry: look at a few for an
		// expired one, else evict the first
		victim, seen := "", 0
		for k, v := range c.entries {
			if seen == 0 {
				victim = k
			}
			if !now.Before(v.until) {
				victim = k
				break
			}
			if seen++; seen == 8 {
				break
			}
		}
		delete(c.entries, victim)
	}
	c.entries[token] = e
}

// len returns the number of cached tokens.
func (c *tokenCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

// keysFor returns the keys that may verify a token with header alg and kid,
// or the reason there are none. An unknown kid asks the JWKS for a refresh
// first.
func (p *JWTProvider) keysFor(ctx context.Context, alg, kid string) ([]any, string) {
	set := p.static
	if p.jwks != nil {
		set = mergeKeySets(p.static, p.jwks.current(ctx))
	}
	keys, kidKnown := set.candidates(alg, kid)
	if len(keys) == 0 && kid != "" && !kidKnown && p.jwks != nil {
		// look again even when no refresh was due: one may have published
		// new keys since set was read
		p.jwks.refreshForKID(ctx)
		set = mergeKeySets(p.static, p.jwks.current(ctx))
		keys, kidKnown = set.candidates(alg, kid)
	}
	if len(keys) > 0 {
		return keys, ""
	}
	switch {
	case kidKnown:
		return nil, "algorithm " + alg + " is not accepted for this key id"
	case kid != "":
		return nil, "unknown key id (kid)"
	default:
		return nil, "algorithm " + alg + " is not accepted"
	}
}

// tokenHeader reads the alg and kid of a token's header, or says why the
// token is refused before any key is looked at.
func tokenHeader(token string) (alg, kid, reason string) {
	head, rest, ok := strings.Cut(token, ".")
	if !ok || strings.Count(rest, ".") != 1 {
		return "", "", reasonMalformed
	}
	raw, err := b64url(head)
	if err != nil {
		return "", "", reasonMalformed
	}
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		return "", "", reasonMalformed
	}
	alg, _ = h["alg"].(string)
	switch {
	case alg == "":
		return "", "", "token header has no alg"
	case strings.EqualFold(alg, "none"):
		return "", "", "algorithm none is not accepted"
	case !slices.Contains(knownAlgorithms, alg):
		return "", "", "unsupported algorithm"
	}
	if v, present := h["kid"]; present {
		if kid, ok = v.(string); !ok {
			return "", "", "token header kid is not a string"
		}
	}
	return alg, kid, ""
}

// Reasons shown to clients.
const (
	reasonMissing   = "missing credentials: send Authorization: Bearer <token> or X-API-Key: <key>"
	reasonMalformed = "malformed token"
)

// tokenErrorReason turns a golang-jwt error into a reason for the client.
func (p *JWTProvider) tokenErrorReason(err error, claims jwt.MapClaims) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return reasonMalformed
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "invalid signature"
	case errors.Is(err, jwt.ErrInvalidType):
		return "a time claim (exp, nbf, iat) is not a number"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		missing := func(name string) bool { v, ok := claims[name]; return !ok || v == "" || v == float64(0) }
		switch {
		case missing("exp"):
			return "token has no exp claim"
		case p.Issuer != "" && missing("iss"):
			return "token has no iss claim"
		}
		return "token has no aud claim"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "token not valid yet (nbf)"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "token issued in the future (iat)"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "wrong issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "wrong audience"
	default:
		return "invalid token"
	}
}

// claimString renders a claim value as a placeholder value.
func claimString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

// bearerChallenge returns a WWW-Authenticate value (RFC 6750): with no
// reason, the bare challenge sent when no credential was given; otherwise
// one that says the credential was refused, and why.
func bearerChallenge(realm, reason string) string {
	if reason == "" || reason == reasonMissing {
		return `Bearer realm="` + quotable(realm) + `"`
	}
	return `Bearer realm="` + quotable(realm) + `", error="invalid_token", error_description="` + quotable(reason) + `"`
}

// quotable keeps the characters RFC 6750 allows in a quoted attribute
// (printable ASCII but '"' and '\'), replacing the others with '?'.
func quotable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return '?'
		}
		return r
	}, s)
}

// Interface guards
var (
	_ caddy.Provisioner       = (*JWTProvider)(nil)
	_ caddy.Validator         = (*JWTProvider)(nil)
	_ caddy.CleanerUpper      = (*JWTProvider)(nil)
	_ caddyauth.Authenticator = (*JWTProvider)(nil)
	_ credentialVerifier      = (*JWTProvider)(nil)
)

package caddymodule

import (
	"crypto/hmac"
	"crypto/sha256"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddyserver/caddy/v2"
)

// TestJWTProviderRefusals covers every way a bearer credential can be
// wrong, each with its reason.
func TestJWTProviderRefusals(t *testing.T) {
	k := testKeys()
	dir := t.TempDir()
	rsaPEM := writePublicPEM(t, dir, "rsa.pem", &k.rsa.PublicKey)
	pemBytes, _ := os.ReadFile(rsaPEM)

	hsOnly := provisionJWT(t, &JWTProvider{Secret: testSecret})
	rsOnly := provisionJWT(t, &JWTProvider{PublicKeys: []JWTPublicKey{{File: rsaPEM, KID: "r1"}}})
	withAud := provisionJWT(t, &JWTProvider{Secret: testSecret, Issuer: "https://issuer.test", Audience: []string{"scrape-api"}})

	claims := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := accessClaims("alice")
		mod(c)
		return c
	}
	now := time.Now()
	hmacOf := func(key []byte, signingInput string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(signingInput))
		return m.Sum(nil)
	}
	// the algorithm confusion attack: an RS256 header, signed with an HMAC
	// whose key is the RSA public key's PEM
	confused := func(alg string) string {
		head := rawToken(map[string]string{"alg": alg, "typ": "JWT"}, accessClaims("mallory"), nil)
		input := head[:strings.LastIndex(head, ".")]
		return rawToken(map[string]string{"alg": alg, "typ": "JWT"}, accessClaims("mallory"), hmacOf(pemBytes, input))
	}

	tests := []struct {
		name   string
		p      *JWTProvider
		header []string
		reason string
	}{
		{"missing", hsOnly, nil, reasonMissing},
		{"two headers", hsOnly, []string{"Bearer a", "Bearer b"}, "more than one Authorization header"},
		{"basic scheme", hsOnly, []string{"Basic YWxpY2U6cHc="}, "the Authorization header must be Bearer <token>"},
		{"empty", hsOnly, []string{"Bearer "}, "empty bearer token"},
		{"empty no space", hsOnly, []string{"Bearer"}, "empty bearer token"},
		{"malformed one part", hsOnly, []string{"Bearer abc"}, reasonMalformed},
		{"malformed four parts", hsOnly, []string{"Bearer a.b.c.d"}, reasonMalformed},
		{"malformed header base64", hsOnly, []string{"Bearer !!!.e30.sig"}, reasonMalformed},
		{"malformed header json", hsOnly, []string{"Bearer bm90anNvbg.e30.c2ln"}, reasonMalformed},
		{"malformed payload", hsOnly, []string{"Bearer " + rawToken(map[string]string{"alg": "HS256"}, "x", nil)[:20] + ".!!.x"}, reasonMalformed},
		{"no alg", hsOnly, []string{"Bearer " + rawToken(map[string]string{"typ": "JWT"}, accessClaims("a"), []byte("x"))}, "token header has no alg"},
		{"alg none", hsOnly, []string{"Bearer " + rawToken(map[string]string{"alg": "none"}, accessClaims("a"), nil)}, "algorithm none is not accepted"},
		{"alg NoNe", hsOnly, []string{"Bearer " + rawToken(map[string]string{"alg": "NoNe"}, accessClaims("a"), nil)}, "algorithm none is not accepted"},
		{"alg unknown", hsOnly, []string{"Bearer " + rawToken(map[string]string{"alg": "HS1"}, accessClaims("a"), []byte("x"))}, "unsupported algorithm"},
		{"kid not a string", hsOnly, []string{"Bearer " + rawToken(map[string]any{"alg": "HS256", "kid": 7}, accessClaims("a"), []byte("x"))}, "token header kid is not a string"},
		{"wrong secret", hsOnly, []string{"Bearer " + sign(t, jwt.SigningMethodHS256, []byte("another-secret-of-32-bytes-......"), "", accessClaims("a"))}, "invalid signature"},
		{"tampered payload", hsOnly, []string{"Bearer " + tamper(hs256(t, accessClaims("alice")))}, "invalid signature"},
		{"HS384 when HS256 is configured", hsOnly, []string{"Bearer " + sign(t, jwt.SigningMethodHS384, []byte(testSecret), "", accessClaims("a"))}, "algorithm HS384 is not accepted"},
		{"RS256 when only a secret is configured", hsOnly, []string{"Bearer " + sign(t, jwt.SigningMethodRS256, k.rsa, "", accessClaims("a"))}, "algorithm RS256 is not accepted"},
		{"expired", hsOnly, []string{"Bearer " + hs256(t, claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Minute).Unix() }))}, "token expired"},
		{"no exp", hsOnly, []string{"Bearer " + hs256(t, claims(func(c jwt.MapClaims) { delete(c, "exp") }))}, "token has no exp claim"},
		{"exp zero", hsOnly, []string{"Bearer " + hs256(t, claims(func(c jwt.MapClaims) { c["exp"] = 0 }))}, "token has no exp claim"},
		{"exp not a number", hsOnly, []string{"Bearer " + hs256(t, claims(func(c jwt.MapClaims) { c["exp"] = "tomorrow" }))}, "a time claim (exp, nbf, iat) is not a number"},
		{"not yet valid", hsOnly, []string{"Bearer " + hs256(t, claims(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Minute).Unix() }))}, "token not valid yet (nbf)"},
		{"issued in the future", hsOnly, []string{"Bearer " + hs256(t, claims(func(c jwt.MapClaims) { c["iat"] = now.Add(time.Minute).Unix() }))}, "token issued in the future (iat)"},
		{"wrong type", hsOnly, []string{"Bearer " + hs256(t, claims(func(c jwt.MapClaims) { c["type"] = "refresh" }))}, "token type must be access"},
		{"no type", hsOnly, []string{"Bearer " + hs256(t, claims(func(c jwt.MapClaims) { delete(c, "type") }))}, "token type must be access"},
		{"no client id", hsOnly, []string{"Bearer " + hs256(t, claims(func(c jwt.MapClaims) { delete(c, "client_id") }))}, "token has no client id (claim client_id)"},
		{"empty client id", hsOnly, []string{"Bearer " + hs256(t, claims(func(c jwt.MapClaims) { c["client_id"] = "" }))}, "token has no client id (claim client_id)"},
		{"client id not a string", hsOnly, []string{"Bearer " + hs256(t, claims(func(c jwt.MapClaims) { c["client_id"] = 42 }))}, "token has no client id (claim client_id)"},
		{"oversized", hsOnly, []string{"Bearer " + hs256(t, claims(func(c jwt.MapClaims) { c["pad"] = strings.Repeat("x", 9000) }))}, "token too large (more than 8192 bytes)"},
		{"algorithm confusion RS256 header", rsOnly, []string{"Bearer " + confused("RS256")}, "invalid signature"},
		{"algorithm confusion HS256 header", rsOnly, []string{"Bearer " + confused("HS256")}, "algorithm HS256 is not accepted"},
		{"unknown kid", rsOnly, []string{"Bearer " + sign(t, jwt.SigningMethodRS256, k.rsa, "r9", accessClaims("a"))}, "unknown key id (kid)"},
		{"known kid, other algorithm", rsOnly, []string{"Bearer " + sign(t, jwt.SigningMethodPS256, k.rsa, "r1", accessClaims("a"))}, "algorithm PS256 is not accepted for this key id"},
		{"other RSA key", rsOnly, []string{"Bearer " + sign(t, jwt.SigningMethodRS256, k.rsa2, "r1", accessClaims("a"))}, "invalid signature"},
		{"wrong issuer", withAud, []string{"Bearer " + hs256(t, claims(func(c jwt.MapClaims) { c["iss"], c["aud"] = "https://evil.test", "scrape-api" }))}, "wrong issuer"},
		{"no issuer", withAud, []string{"Bearer " + hs256(t, claims(func(c jwt.MapClaims) { c["aud"] = "scrape-api" }))}, "token has no iss claim"},
		{"wrong audience", withAud, []string{"Bearer " + hs256(t, claims(func(c jwt.MapClaims) { c["iss"], c["aud"] = "https://issuer.test", "other-api" }))}, "wrong audience"},
		{"no audience", withAud, []string{"Bearer " + hs256(t, claims(func(c jwt.MapClaims) { c["iss"] = "https://issuer.test" }))}, "token has no aud claim"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			user, reason, err := tc.p.verify(bearerRequest(tc.header...))
			if err != nil {
				t.Fatalf("verify error: %v", err)
			}
			if reason != tc.reason {
				t.Fatalf("reason = %q, want %q", reason, tc.reason)
			}
			if user.ID != "" {
				t.Fatalf("refused credential has user %q", user.ID)
			}
			if strings.Contains(reason, testSecret) {
				t.Fatal("reason leaks the secret")
			}
			// the caddyauth path: no error, a challenge with the reason
			w := httptest.NewRecorder()
			_, ok, err := tc.p.Authenticate(w, bearerRequest(tc.header...))
			if ok || err != nil {
				t.Fatalf("Authenticate = %v, %v", ok, err)
			}
			if got := w.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, `Bearer realm="scrapegate"`) {
				t.Fatalf("WWW-Authenticate = %q", got)
			}
		})
	}
}

// tamper changes the payload of a token, keeping its signature.
func tamper(token string) string {
	parts := strings.Split(token, ".")
	parts[1] = rawToken(nil, accessClaims("mallory"), nil)
	parts[1] = strings.Split(parts[1], ".")[1]
	return strings.Join(parts, ".")
}

// TestJWTProviderAccepts covers every way a bearer credential can be right.
func TestJWTProviderAccepts(t *testing.T) {
	k := testKeys()
	dir := t.TempDir()
	rsaPEM := writePublicPEM(t, dir, "rsa.pem", &k.rsa.PublicKey)
	ecPEM := writePublicPEM(t, dir, "ec.pem", &k.ec.PublicKey)
	edPEM := writePublicPEM(t, dir, "ed.pem", k.ed.Public())
	jwks := filepath.Join(dir, "jwks.json")
	writeFileAtomic(t, jwks, jwksJSON(
		publicJWK("j-rsa", "RS256", &k.rsa2.PublicKey),
		publicJWK("j-ec", "", &k.ec.PublicKey),
		publicJWK("j-ed", "EdDSA", k.ed.Public()),
	))

	hs := provisionJWT(t, &JWTProvider{Secret: testSecret, UserClaims: []string{"plan", "quota"}})
	hs512 := provisionJWT(t, &JWTProvider{Secret: testSecret, Algorithm: "HS512"})
	pems := provisionJWT(t, &JWTProvider{PublicKeys: []JWTPublicKey{{File: rsaPEM}, {File: ecPEM}, {File: edPEM, KID: "ed1"}}})
	set := provisionJWT(t, &JWTProvider{JWKSFiles: []string{jwks}})
	lenient := provisionJWT(t, &JWTProvider{Secret: testSecret, Leeway: caddy.Duration(30 * time.Second)})
	audIss := provisionJWT(t, &JWTProvider{Secret: testSecret, Issuer: "https://issuer.test", Audience: []string{"a", "scrape-api"}})
	custom := provisionJWT(t, &JWTProvider{Secret: testSecret, ClientIDClaim: "sub", RoleClaim: "grp"})

	with := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := accessClaims("alice")
		mod(c)
		return c
	}
	now := time.Now()
	tests := []struct {
		name  string
		p     *JWTProvider
		token string
		id    string
		meta  map[string]string
	}{
		{"HS256", hs, hs256(t, accessClaims("alice")), "alice", map[string]string{"auth_method": "jwt"}},
		{"HS256 with role and user claims", hs, hs256(t, with(func(c jwt.MapClaims) { c["role"], c["plan"], c["quota"] = "admin", "pro", 12.5 })),
			"alice", map[string]string{"auth_method": "jwt", "role": "admin", "plan": "pro", "quota": "12.5"}},
		{"HS256 with a kid", hs, sign(t, jwt.SigningMethodHS256, []byte(testSecret), "any", accessClaims("alice")), "alice", nil},
		{"HS512", hs512, sign(t, jwt.SigningMethodHS512, []byte(testSecret), "", accessClaims("alice")), "alice", nil},
		{"RS256 PEM", pems, sign(t, jwt.SigningMethodRS256, k.rsa, "", accessClaims("bob")), "bob", nil},
		{"ES256 PEM", pems, sign(t, jwt.SigningMethodES256, k.ec, "", accessClaims("carol")), "carol", nil},
		{"EdDSA PEM by kid", pems, sign(t, jwt.SigningMethodEdDSA, k.ed, "ed1", accessClaims("dave")), "dave", nil},
		{"RS256 JWKS", set, sign(t, jwt.SigningMethodRS256, k.rsa2, "j-rsa", accessClaims("erin")), "erin", nil},
		{"ES256 JWKS", set, sign(t, jwt.SigningMethodES256, k.ec, "j-ec", accessClaims("frank")), "frank", nil},
		{"EdDSA JWKS without kid", set, sign(t, jwt.SigningMethodEdDSA, k.ed, "", accessClaims("grace")), "grace", nil},
		{"expired within leeway", lenient, hs256(t, with(func(c jwt.MapClaims) { c["exp"] = now.Add(-10 * time.Second).Unix() })), "alice", nil},
		{"nbf within leeway", lenient, hs256(t, with(func(c jwt.MapClaims) { c["nbf"] = now.Add(10 * time.Second).Unix() })), "alice", nil},
		{"issuer and one audience", audIss, hs256(t, with(func(c jwt.MapClaims) { c["iss"], c["aud"] = "https://issuer.test", []string{"x", "scrape-api"} })), "alice", nil},
		{"custom claims", custom, hs256(t, with(func(c jwt.MapClaims) { delete(c, "client_id"); c["sub"], c["grp"] = "svc-1", "ops" })),
			"svc-1", map[string]string{"auth_method": "jwt", "role": "ops"}},
		{"lowercase bearer", hs, "", "alice", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			header := "Bearer " + tc.token
			if tc.token == "" {
				header = "bearer " + hs256(t, accessClaims("alice"))
			}
			user, reason, err := tc.p.verify(bearerRequest(header))
			if err != nil || reason != "" {
				t.Fatalf("verify = %q, %v", reason, err)
			}
			if user.ID != tc.id {
				t.Fatalf("user id = %q, want %q", user.ID, tc.id)
			}
			for k, v := range tc.meta {
				if user.Metadata[k] != v {
					t.Errorf("metadata %s = %q, want %q", k, user.Metadata[k], v)
				}
			}
			if tc.meta != nil && len(user.Metadata) != len(tc.meta) {
				t.Errorf("metadata = %v, want %v", user.Metadata, tc.meta)
			}
		})
	}
}

// TestJWTProviderProvisionErrors checks that a provider without a
// verification key, or with a bad one, is a config error.
func TestJWTProviderProvisionErrors(t *testing.T) {
	k := testKeys()
	dir := t.TempDir()
	privPEM := writePrivatePEM(t, dir, "priv.pem", k.rsa)
	rsaPEM := writePublicPEM(t, dir, "rsa.pem", &k.rsa.PublicKey)
	ecPEM := writePublicPEM(t, dir, "ec.pem", &k.ec.PublicKey)
	badJWKS := filepath.Join(dir, "bad.json")
	writeFileAtomic(t, badJWKS, []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`))
	t.Setenv("SCRAPEGATE_UNIT_EMPTY", "")

	tests := []struct {
		name string
		p    JWTProvider
		want string
	}{
		{"nothing", JWTProvider{}, "no verification key"},
		{"empty secret", JWTProvider{Secret: "{env.SCRAPEGATE_UNIT_EMPTY}"}, "secret is empty"},
		{"unset secret", JWTProvider{Secret: "{env.SCRAPEGATE_UNIT_NEVER_SET}"}, "secret is empty"},
		{"RS256 secret", JWTProvider{Secret: testSecret, Algorithm: "RS256"}, "not an HMAC algorithm"},
		{"none secret", JWTProvider{Secret: testSecret, Algorithm: "none"}, "not an HMAC algorithm"},
		{"missing PEM", JWTProvider{PublicKeys: []JWTPublicKey{{File: filepath.Join(dir, "nope.pem")}}}, "public_keys 0: reading"},
		{"private PEM", JWTProvider{PublicKeys: []JWTPublicKey{{File: privPEM}}}, "private keys do not belong here"},
		{"RSA key as ES256", JWTProvider{PublicKeys: []JWTPublicKey{{File: rsaPEM, Algorithm: "ES256"}}}, "does not suit this key"},
		{"EC key as ES384", JWTProvider{PublicKeys: []JWTPublicKey{{File: ecPEM, Algorithm: "ES384"}}}, "does not suit this key"},
		{"public key as HS256", JWTProvider{PublicKeys: []JWTPublicKey{{File: rsaPEM, Algorithm: "HS256"}}}, "unsupported algorithm"},
		{"missing JWKS", JWTProvider{JWKSFiles: []string{filepath.Join(dir, "nope.json")}}, "jwks_file"},
		{"symmetric JWKS", JWTProvider{JWKSFiles: []string{badJWKS}}, "no usable signature key"},
		{"JWKS URL not http", JWTProvider{JWKSURLs: []string{"file:///etc/passwd"}}, "not an http(s) URL"},
		{"negative leeway", JWTProvider{Secret: testSecret, Leeway: -1}, "leeway"},
		{"user claim id", JWTProvider{Secret: testSecret, UserClaims: []string{"id"}}, "user_claims"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.p
			err := p.Provision(testContext(t))
			t.Cleanup(func() { _ = p.Cleanup() })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Provision error = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), testSecret) {
				t.Fatal("error leaks the secret")
			}
		})
	}
}

// TestJWTProviderSecretFromEnv checks that the secret is resolved from an
// environment placeholder in Provision.
func TestJWTProviderSecretFromEnv(t *testing.T) {
	t.Setenv("SCRAPEGATE_UNIT_SECRET", testSecret)
	p := provisionJWT(t, &JWTProvider{Secret: "{env.SCRAPEGATE_UNIT_SECRET}"})
	if _, reason, _ := p.verify(bearerRequest("Bearer " + hs256(t, accessClaims("alice")))); reason != "" {
		t.Fatalf("reason = %q", reason)
	}
}

// TestJWTProviderWebSocketToken checks the token of a WebSocket upgrade
// without an Authorization header: as a subprotocol or a query parameter.
func TestJWTProviderWebSocketToken(t *testing.T) {
	p := provisionJWT(t, &JWTProvider{Secret: testSecret})
	tok := hs256(t, accessClaims("browser"))
	upgrade := func(target string, protocols string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, target, nil)
		r.Header.Set("Connection", "Upgrade")
		r.Header.Set("Upgrade", "websocket")
		if protocols != "" {
			r.Header.Set("Sec-WebSocket-Protocol", protocols)
		}
		return r
	}
	for name, r := range map[string]*http.Request{
		"subprotocol": upgrade("/ws", "scrapegate.v1, bearer."+tok),
		"query":       upgrade("/ws?token="+tok, ""),
	} {
		if !p.hasCredential(r) {
			t.Fatalf("%s: no credential seen", name)
		}
		if user, reason, err := p.verify(r); err != nil || reason != "" || user.ID != "browser" {
			t.Fatalf("%s: verify = %q, %q, %v", name, user.ID, reason, err)
		}
	}
	// not an upgrade: the query token is ignored
	r := httptest.NewRequest(http.MethodGet, "/ws?token="+tok, nil)
	if p.hasCredential(r) {
		t.Fatal("query token of a plain request taken")
	}
	// a bad token in a subprotocol is refused with its reason
	if _, reason, _ := p.verify(upgrade("/ws", "scrapegate.v1, bearer.x.y.z")); reason != "invalid signature" && reason != reasonMalformed {
		t.Fatalf("reason %q", reason)
	}
}

// TestBearerChallenge checks the WWW-Authenticate values.
func TestBearerChallenge(t *testing.T) {
	if got := bearerChallenge("scrapegate", reasonMissing); got != `Bearer realm="scrapegate"` {
		t.Errorf("missing: %q", got)
	}
	got := bearerChallenge(`re"alm`, "bad \"kid\"\n\\é")
	want := `Bearer realm="re?alm", error="invalid_token", error_description="bad ?kid????"`
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

package caddymodule

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// fuzzAuth is a jwt_auth handler with every kind of key, shared by the
// fuzz iterations of one process.
func fuzzAuth(f *testing.F) *JWTAuth {
	k := testKeys()
	dir := f.TempDir()
	pem := writePublicPEM(f, dir, "rsa.pem", &k.rsa.PublicKey)
	jwks := dir + "/jwks.json"
	writeFileAtomic(f, jwks, jwksJSON(publicJWK("e1", "ES256", &k.ec.PublicKey), publicJWK("d1", "", k.ed.Public())))
	ctx := testContext(f)
	h := &JWTAuth{}
	h.providers = []namedAuthenticator{
		{"scrapegate_api_key", &APIKeyProvider{Keys: []APIKey{{Hash: testAPIKeyHash(), ClientID: "key-client"}}}},
		{"scrapegate_jwt", &JWTProvider{Secret: testSecret, PublicKeys: []JWTPublicKey{{File: pem, KID: "r1"}}, JWKSFiles: []string{jwks},
			Issuer: "https://issuer.test", Audience: []string{"api"}, UserClaims: []string{"plan"}}},
	}
	if err := h.providers[0].auth.(*APIKeyProvider).Provision(ctx); err != nil {
		f.Fatal(err)
	}
	if err := h.providers[1].auth.(*JWTProvider).Provision(ctx); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = h.providers[1].auth.(*JWTProvider).Cleanup() })
	h.realm = DefaultAuthRealm
	h.logger = ctx.Logger()
	return h
}

// FuzzJWTAuth feeds arbitrary Authorization and X-API-Key values to
// jwt_auth: it never panics, never fails with anything but a 401
// UNAUTHORIZED, and a refusal's reason never holds a secret.
func FuzzJWTAuth(f *testing.F) {
	h := fuzzAuth(f)
	k := testKeys()
	good := accessClaims("alice")
	good["iss"], good["aud"] = "https://issuer.test", "api"
	good["exp"] = time.Now().Add(24 * 365 * time.Hour).Unix()
	seeds := []string{
		"", "Bearer", "Bearer ", "Basic x", "Bearer a.b.c", "Bearer a.b", "Bearer ..", "Bearer e30.e30.",
		"Bearer " + sign(f, jwt.SigningMethodHS256, []byte(testSecret), "", good),
		"Bearer " + sign(f, jwt.SigningMethodRS256, k.rsa, "r1", good),
		"Bearer " + sign(f, jwt.SigningMethodES256, k.ec, "e1", good),
		"Bearer " + sign(f, jwt.SigningMethodEdDSA, k.ed, "d1", good),
		"Bearer " + sign(f, jwt.SigningMethodHS256, []byte(testSecret), "", accessClaims("bob")),
		"Bearer " + rawToken(map[string]string{"alg": "none"}, good, nil),
		"Bearer " + rawToken(map[string]any{"alg": "RS256", "kid": []int{1}}, good, []byte("sig")),
		"Bearer " + rawToken(map[string]any{"alg": "ES256", "kid": "e1"}, good, make([]byte, 64)),
		"Bearer " + rawToken(map[string]any{"alg": "EdDSA"}, map[string]any{"exp": 1e300, "type": "access"}, make([]byte, 64)),
		"Bearer " + strings.Repeat("A", 9000),
	}
	for i, s := range seeds {
		key := ""
		if i%3 == 0 {
			key = testAPIKey
		}
		f.Add(s, key)
	}
	f.Add("", "sg_wrong")
	f.Fuzz(func(t *testing.T, authorization, apiKey string) {
		r := httptest.NewRequest(http.MethodPost, "/scrape", nil)
		if authorization != "" {
			r.Header["Authorization"] = []string{authorization}
		}
		if apiKey != "" {
			r.Header["X-Api-Key"] = []string{apiKey}
		}
		w, seen, err := serveAuth(h, r)
		if err == nil {
			if seen == nil || seen["id"] == "" {
				t.Fatalf("passed without a user: %v", seen)
			}
			return
		}
		var he caddyhttp.HandlerError
		var ce *CodedError
		if !errors.As(err, &he) || he.StatusCode != http.StatusUnauthorized || !errors.As(err, &ce) || ce.Code != CodeUnauthorized {
			t.Fatalf("error %v is not a 401 UNAUTHORIZED", err)
		}
		if ce.Detail == "" || strings.Contains(ce.Detail, testSecret) || strings.Contains(ce.Detail, testAPIKey) {
			t.Fatalf("detail %q", ce.Detail)
		}
		if !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), `Bearer realm="scrapegate"`) {
			t.Fatalf("challenge %q", w.Header().Get("WWW-Authenticate"))
		}
	})
}

// FuzzAPIKeysFile feeds arbitrary keys files to the parser: it never
// panics, and every key it returns has a valid digest and a client id.
func FuzzAPIKeysFile(f *testing.F) {
	h := testAPIKeyHash()
	for _, s := range []string{"", "# c\n", h + " c\n", "api_key " + h + " c admin\n", "sha256:" + strings.ToUpper(h) + " c",
		"api_key\n", h, "x y z w", "\x00\xff", h + " c\r\n" + h + " d"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := parseAPIKeys(data, "fuzz")
		if err != nil {
			return
		}
		for _, k := range keys {
			if _, err := parseKeyHash(k.Hash); err != nil || k.ClientID == "" {
				t.Fatalf("bad key %+v", k)
			}
		}
		if len(keys) == 0 {
			return
		}
		p := &APIKeyProvider{Keys: keys}
		if err := p.Provision(testContext(t)); err != nil {
			return // duplicates
		}
		if user, reason := p.check(string(data)); reason == "" {
			sum := sha256.Sum256(data)
			if !strings.Contains(strings.ToLower(string(data)), hex.EncodeToString(sum[:])) {
				t.Fatalf("key %q accepted as %q", data, user.ID)
			}
		}
	})
}

// FuzzScrapeTarget feeds arbitrary /scrape bodies to scrape_target and
// then to scrape_rpc's decoding, as the /scrape route does: nothing panics,
// the body reaches scrape_rpc unchanged, a refused body is a 4xx error with
// a catalogue code (never a 5xx, also as rendered), and the site the
// per-site rate limit keys on is the host of the parameters.url that
// scrape_rpc sends to the worker, so that no spelling of a body can scrape
// a site under another site's key.
func FuzzScrapeTarget(f *testing.F) {
	for _, s := range []string{`{"script_name":"echo","parameters":{"url":"https://Example.com:80/"}}`, `{"parameters":{"url":"http://[::1]/"}}`,
		`{"script_name":"a","parameters":{"url":"https://bücher.de"}}`, `{"parameters":{"url":"//x"}}`, `{"parameters":{"url":"a:b"}}`,
		`{"parameters":null}`, `{"parameters":{"url":"http://%zz/"}}`, `[`, ``, `{"parameters":{"url":"http://a..b./"}}`,
		`{"script_name":"a","PARAMETERS":{"url":"https://a.test"}}`, `{"script_name":"a","parameters":{"url":"https://a.test","url":"https://b.test"}}`,
		`{"script_name":"a","parameters":{"url":"https://a.test"},"parameters":{"url":"https://b.test"}}`,
		`{"script_name":"a","parameters":{"URL":"https://a.test","url":"https://b.test"}}`, `{"script_name":"a","timeout":1e400}`} {
		f.Add([]byte(s))
	}
	h := &ScrapeTarget{MaxBody: 1 << 20}
	f.Fuzz(func(t *testing.T, body []byte) {
		host, seen := runTarget(t, h, strings.NewReader(string(body)), -1)
		if seen != string(body) {
			t.Fatal("body changed")
		}
		if host != strings.ToLower(host) || strings.ContainsAny(host, "/?#@ ") || len(host) > 253 {
			t.Fatalf("host %q", host)
		}
		req, err := decodeScrapeRequest([]byte(seen), 300*time.Second, 3600*time.Second)
		if err != nil {
			var he caddyhttp.HandlerError
			if _, ok := codeOf(err); !ok || !errors.As(err, &he) || he.StatusCode < 400 || he.StatusCode >= 500 {
				t.Fatalf("decode error %v", err)
			}
			if status, _ := renderError(err, "", "rid"); status >= 500 {
				t.Fatalf("rendered %d", status)
			}
			return
		}
		var params map[string]json.RawMessage
		if err := json.Unmarshal(req.parameters, &params); err != nil {
			t.Fatalf("parameters %q: %v", req.parameters, err)
		}
		var u string
		want := ""
		if json.Unmarshal(params["url"], &u) == nil {
			want = normalizeHost(u)
		}
		if host != want {
			t.Fatalf("target host %q, but the worker gets parameters %s (host %q)", host, req.parameters, want)
		}
	})
}

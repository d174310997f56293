package caddymodule

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// testAPIKey is an API key of the tests and its digest.
const testAPIKey = "sg_unit-test-key-with-plenty-of-entropy-0123456789"

func testAPIKeyHash() string {
	sum := sha256.Sum256([]byte(testAPIKey))
	return hex.EncodeToString(sum[:])
}

// newTestJWTAuth provisions a jwt_auth handler from its Caddyfile block.
func newTestJWTAuth(t *testing.T, block string) *JWTAuth {
	t.Helper()
	h := new(JWTAuth)
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(block)); err != nil {
		t.Fatalf("parsing: %v", err)
	}
	// a JSON round trip, as a real config goes
	raw, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	h = new(JWTAuth)
	if err := json.Unmarshal(raw, h); err != nil {
		t.Fatal(err)
	}
	if err := h.Provision(testContext(t)); err != nil {
		t.Fatalf("provision: %v", err)
	}
	return h
}

// serveAuth runs the handler on r and returns the error, the response and
// what the next handler saw of the user (nil when it was not called).
func serveAuth(h *JWTAuth, r *http.Request) (*httptest.ResponseRecorder, map[string]string, error) {
	repl := caddyhttp.NewTestReplacer(r)
	w := httptest.NewRecorder()
	var seen map[string]string
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		seen = make(map[string]string)
		for _, k := range []string{"id", "role", "auth_method", "plan"} {
			if v, ok := repl.GetString("http.auth.user." + k); ok {
				seen[k] = v
			}
		}
		return nil
	})
	err := h.ServeHTTP(w, r, next)
	return w, seen, err
}

// TestJWTAuthHandler checks the handler end to end with both providers: the
// user placeholders on success, the 401 error (code, reason) and the
// challenge on refusal.
func TestJWTAuthHandler(t *testing.T) {
	h := newTestJWTAuth(t, `jwt_auth {
		secret `+testSecret+`
		user_claims plan
		api_key `+testAPIKeyHash()+` key-client operator
	}`)

	type result struct {
		id, role, method string
		reason           string
		challenge        string
	}
	tokAlice := hs256(t, accessClaims("alice"))
	admin := accessClaims("root")
	admin["role"], admin["plan"] = "admin", "gold"
	tests := []struct {
		name    string
		headers map[string][]string
		want    result
	}{
		{"token", map[string][]string{"Authorization": {"Bearer " + tokAlice}}, result{id: "alice", method: "jwt"}},
		{"admin token", map[string][]string{"Authorization": {"Bearer " + hs256(t, admin)}}, result{id: "root", role: "admin", method: "jwt"}},
		{"api key", map[string][]string{"X-Api-Key": {testAPIKey}}, result{id: "key-client", role: "operator", method: "api_key"}},
		{"good key, bad token", map[string][]string{"X-Api-Key": {testAPIKey}, "Authorization": {"Bearer x"}}, result{id: "key-client", role: "operator", method: "api_key"}},
		{"bad key, good token", map[string][]string{"X-Api-Key": {"nope"}, "Authorization": {"Bearer " + tokAlice}}, result{id: "alice", method: "jwt"}},
		{"nothing", nil, result{reason: reasonMissing, challenge: `Bearer realm="scrapegate"`}},
		{"wrong key", map[string][]string{"X-Api-Key": {"sg_wrong"}}, result{reason: "invalid API key",
			challenge: `Bearer realm="scrapegate", error="invalid_token", error_description="invalid API key"`}},
		{"empty key", map[string][]string{"X-Api-Key": {""}}, result{reason: "empty API key"}},
		{"two keys", map[string][]string{"X-Api-Key": {testAPIKey, testAPIKey}}, result{reason: "more than one X-API-Key header"}},
		{"overlong key", map[string][]string{"X-Api-Key": {strings.Repeat("k", 600)}}, result{reason: "invalid API key"}},
		{"expired token", map[string][]string{"Authorization": {"Bearer " + hs256(t, jwtClaimsWith("exp", 1))}}, result{reason: "token expired",
			challenge: `Bearer realm="scrapegate", error="invalid_token", error_description="token expired"`}},
		{"both wrong: the first provider's reason", map[string][]string{"X-Api-Key": {"nope"}, "Authorization": {"Bearer x"}}, result{reason: "invalid API key"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/scrape", nil)
			for k, vs := range tc.headers {
				for _, v := range vs {
					r.Header.Add(k, v)
				}
			}
			w, seen, err := serveAuth(h, r)
			if tc.want.reason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if seen["id"] != tc.want.id || seen["role"] != tc.want.role || seen["auth_method"] != tc.want.method {
					t.Fatalf("user placeholders = %v, want %+v", seen, tc.want)
				}
				return
			}
			if seen != nil {
				t.Fatal("next handler called for a refused credential")
			}
			var he caddyhttp.HandlerError
			var ce *CodedError
			if !errors.As(err, &he) || he.StatusCode != http.StatusUnauthorized || !errors.As(err, &ce) || ce.Code != CodeUnauthorized {
				t.Fatalf("error = %#v, want a 401 UNAUTHORIZED", err)
			}
			if ce.Detail != tc.want.reason {
				t.Fatalf("detail = %q, want %q", ce.Detail, tc.want.reason)
			}
			got := w.Header().Get("WWW-Authenticate")
			if tc.want.challenge != "" && got != tc.want.challenge {
				t.Fatalf("WWW-Authenticate = %q, want %q", got, tc.want.challenge)
			}
			if !strings.HasPrefix(got, `Bearer realm="scrapegate"`) {
				t.Fatalf("WWW-Authenticate = %q", got)
			}
			if strings.Contains(ce.Detail+got, testSecret) || strings.Contains(ce.Detail+got, testAPIKeyHash()) {
				t.Fatal("a secret leaked")
			}
		})
	}
}

// jwtClaimsWith returns access claims of alice with one claim replaced.
func jwtClaimsWith(name string, v any) map[string]any {
	c := accessClaims("alice")
	c[name] = v
	return c
}

// TestJWTAuthRendered checks the 401 as the client sees it, through the
// error renderer of handle_errors (scrape_error).
func TestJWTAuthRendered(t *testing.T) {
	h := newTestJWTAuth(t, "jwt_auth {\n secret "+testSecret+"\n}")
	r := httptest.NewRequest(http.MethodPost, "/scrape", nil)
	r.Header.Set("Authorization", "Bearer "+rawToken(map[string]string{"alg": "none"}, accessClaims("eve"), nil))
	_, _, err := serveAuth(h, r)
	for _, lang := range []string{"", "en"} {
		status, body := renderError(err, lang, "rid")
		if status != http.StatusUnauthorized || body.Code != CodeUnauthorized || body.Detail != "algorithm none is not accepted" ||
			body.Error != Message(CodeUnauthorized, lang) {
			t.Fatalf("rendered %d %+v", status, body)
		}
	}
}

// TestJWTAuthCaddyfile checks the directive's parsing: what it builds and
// every malformed form.
func TestJWTAuthCaddyfile(t *testing.T) {
	h := new(JWTAuth)
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`jwt_auth {
		secret {env.JWT_SECRET_KEY}
		algorithm HS384
		public_key /k/rsa.pem RS512 r1
		public_key /k/ed.pem
		jwks_file /k/a.json
		jwks_url https://issuer.test/jwks.json
		jwks_refresh 1m
		leeway 30s
		issuer https://issuer.test
		audience a b
		client_id_claim sub
		role_claim grp
		user_claims plan tier
		max_token_size 4KiB
		api_key ` + testAPIKeyHash() + ` svc admin
		api_keys_file {env.API_KEYS_FILE}
		api_key_header X-Key
		realm api
	}`))
	if err != nil {
		t.Fatal(err)
	}
	var jp JWTProvider
	var kp APIKeyProvider
	if err := json.Unmarshal(h.ProvidersRaw["scrapegate_jwt"], &jp); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(h.ProvidersRaw["scrapegate_api_key"], &kp); err != nil {
		t.Fatal(err)
	}
	if jp.Secret != "{env.JWT_SECRET_KEY}" || jp.Algorithm != "HS384" || len(jp.PublicKeys) != 2 ||
		jp.PublicKeys[0] != (JWTPublicKey{File: "/k/rsa.pem", Algorithm: "RS512", KID: "r1"}) ||
		jp.JWKSFiles[0] != "/k/a.json" || jp.JWKSURLs[0] != "https://issuer.test/jwks.json" ||
		jp.JWKSRefresh != caddy.Duration(60e9) || jp.Leeway != caddy.Duration(30e9) || jp.Issuer != "https://issuer.test" ||
		strings.Join(jp.Audience, ",") != "a,b" || jp.ClientIDClaim != "sub" || jp.RoleClaim != "grp" ||
		strings.Join(jp.UserClaims, ",") != "plan,tier" || jp.MaxTokenSize != 4096 || jp.Realm != "api" {
		t.Errorf("jwt provider = %+v", jp)
	}
	if len(kp.Keys) != 1 || kp.Keys[0] != (APIKey{Hash: testAPIKeyHash(), ClientID: "svc", Role: "admin"}) ||
		kp.KeysFile != "{env.API_KEYS_FILE}" || kp.Header != "X-Key" || kp.Realm != "api" {
		t.Errorf("api key provider = %+v", kp)
	}

	// only API keys: no JWT provider
	h = new(JWTAuth)
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("jwt_auth {\napi_keys_file /keys\n}")); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.ProvidersRaw["scrapegate_jwt"]; ok || len(h.ProvidersRaw) != 1 {
		t.Errorf("providers = %v", h.ProvidersRaw)
	}

	bad := map[string]string{
		"argument":              "jwt_auth foo {\nsecret x\n}",
		"empty":                 "jwt_auth",
		"empty block":           "jwt_auth {\n}",
		"unknown":               "jwt_auth {\nsecret x\nfoo bar\n}",
		"secret without value":  "jwt_auth {\nsecret\n}",
		"secret twice":          "jwt_auth {\nsecret x\nsecret y\n}",
		"secret two values":     "jwt_auth {\nsecret x y\n}",
		"options without a key": "jwt_auth {\nalgorithm HS256\napi_key " + testAPIKeyHash() + " c\n}",
		"bad leeway":            "jwt_auth {\nsecret x\nleeway soon\n}",
		"bad refresh":           "jwt_auth {\nsecret x\njwks_refresh -\n}",
		"bad size":              "jwt_auth {\nsecret x\nmax_token_size huge\n}",
		"size too big":          "jwt_auth {\nsecret x\nmax_token_size 2MiB\n}",
		"public_key no file":    "jwt_auth {\npublic_key\n}",
		"public_key too many":   "jwt_auth {\npublic_key a RS256 k extra\n}",
		"api_key short":         "jwt_auth {\napi_key " + testAPIKeyHash() + "\n}",
		"api_key bad hash":      "jwt_auth {\napi_key abc client\n}",
		"api_key plain key":     "jwt_auth {\napi_key " + testAPIKey + " client\n}",
		"audience empty":        "jwt_auth {\nsecret x\naudience\n}",
		"realm twice":           "jwt_auth {\nsecret x\nrealm a\nrealm b\n}",
	}
	for name, input := range bad {
		t.Run(name, func(t *testing.T) {
			if err := new(JWTAuth).UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err == nil {
				t.Fatalf("accepted %q", input)
			}
		})
	}
}

// TestJWTAuthProvisionNoFallback checks that a secret that resolves to
// nothing is a config error, even with API keys beside it.
func TestJWTAuthProvisionNoFallback(t *testing.T) {
	t.Setenv("SCRAPEGATE_UNIT_EMPTY", "")
	for _, block := range []string{
		"jwt_auth {\nsecret {env.SCRAPEGATE_UNIT_EMPTY}\n}",
		"jwt_auth {\nsecret {env.SCRAPEGATE_UNIT_EMPTY}\napi_key " + testAPIKeyHash() + " c\n}",
	} {
		h := new(JWTAuth)
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(block)); err != nil {
			t.Fatal(err)
		}
		err := h.Provision(testContext(t))
		if err == nil || !strings.Contains(err.Error(), "secret is empty") {
			t.Fatalf("Provision = %v", err)
		}
	}
	if err := new(JWTAuth).Provision(testContext(t)); err == nil {
		t.Fatal("a handler without providers provisioned")
	}
}

// TestAPIKeyProvider checks keys from the config and a keys file.
func TestAPIKeyProvider(t *testing.T) {
	dir := t.TempDir()
	other := "sg_another-key"
	sum := sha256.Sum256([]byte(other))
	file := filepath.Join(dir, "keys")
	content := "# clients\n\n" + "sha256:" + strings.ToUpper(hex.EncodeToString(sum[:])) + " file-client\n" +
		"api_key 0000000000000000000000000000000000000000000000000000000000000000 zero reader\n"
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SCRAPEGATE_UNIT_KEYS", file)
	p := &APIKeyProvider{Keys: []APIKey{{Hash: testAPIKeyHash(), ClientID: "cfg-client", Role: "admin"}}, KeysFile: "{env.SCRAPEGATE_UNIT_KEYS}"}
	if err := p.Provision(testContext(t)); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{testAPIKey: "cfg-client", other: "file-client", " " + other + " ": "file-client", "sg_nope": "", "": ""} {
		user, reason := p.check(strings.TrimSpace(key))
		if user.ID != want || (want == "") != (reason != "") {
			t.Errorf("check(%q) = %q, %q; want %q", key, user.ID, reason, want)
		}
	}

	bad := map[string]APIKeyProvider{
		"bad hash":     {Keys: []APIKey{{Hash: "xyz", ClientID: "c"}}},
		"no client":    {Keys: []APIKey{{Hash: testAPIKeyHash()}}},
		"duplicate":    {Keys: []APIKey{{Hash: testAPIKeyHash(), ClientID: "a"}, {Hash: "sha256:" + testAPIKeyHash(), ClientID: "b"}}},
		"missing file": {KeysFile: filepath.Join(dir, "nope")},
	}
	for name, p := range bad {
		if err := p.Provision(testContext(t)); err == nil {
			t.Errorf("%s: provisioned", name)
		}
	}
	for _, line := range []string{"onlyone", "abc client", testAPIKeyHash() + " a b c"} {
		if _, err := parseAPIKeys([]byte(line), "f"); err == nil {
			t.Errorf("parseAPIKeys(%q) succeeded", line)
		}
	}
}

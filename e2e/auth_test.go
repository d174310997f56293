package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The authentication tests: jwt_auth, API keys, the token/apikey commands
// and CORS through real gateway processes running the example Caddyfile (or
// testdata/auth/*.Caddyfile), a real worker and the real RabbitMQ.

// testAPIKey is the key of "key-client" in testdata/auth/api_keys.
const testAPIKey = "sg_e2e-test-key-published-in-the-repository-0"

// startExample runs the example Caddyfile on a plain-HTTP port (":PORT" is
// its plain-HTTP form) with env on top of a fresh vhost's AMQP_URL.
func startExample(t *testing.T, amqpURL string, env map[string]string) *Gateway {
	t.Helper()
	port := FreePort(t)
	all := map[string]string{"AMQP_URL": amqpURL, "SCRAPEGATE_ADDR": fmt.Sprintf(":%d", port)}
	for k, v := range env {
		all[k] = v
	}
	g := StartGateway(t, "Caddyfile", all)
	g.URL = fmt.Sprintf("http://127.0.0.1:%d", port)
	return g
}

// waitEchoAs waits until an echo call with hdr succeeds. Transport errors
// are retried: a config reload closes idle keep-alive connections, and a
// POST on one that is closing fails with EOF.
func waitEchoAs(t *testing.T, g *Gateway, hdr map[string]string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, b := tryPost(g.URL+"/scrape", `{"script_name":"echo"}`, hdr)
		if code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("echo never succeeded: %d %s\n%s", code, b, tail(g.Logs(), 40))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// expect401 checks a refusal as the client sees it: 401, the JSON error
// body with code UNAUTHORIZED and the reason, and the challenge.
func expect401(t *testing.T, resp *http.Response, b []byte, reason string) errorBody {
	t.Helper()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401: %s", resp.StatusCode, b)
	}
	eb := decodeError(t, resp, b)
	if eb.Code != "UNAUTHORIZED" || eb.Detail != reason {
		t.Fatalf("code %q detail %q, want UNAUTHORIZED %q", eb.Code, eb.Detail, reason)
	}
	ch := resp.Header.Get("WWW-Authenticate")
	if !strings.HasPrefix(ch, `Bearer realm="scrapegate"`) {
		t.Fatalf("WWW-Authenticate %q", ch)
	}
	if reason != "" && !strings.HasPrefix(reason, "missing credentials") &&
		!strings.Contains(ch, `error="invalid_token"`) {
		t.Fatalf("WWW-Authenticate %q lacks the error", ch)
	}
	return eb
}

// TestAuthCredentials sends every kind of wrong credential, and the right
// ones, through the example Caddyfile's /scrape, /status and /ws routes.
func TestAuthCredentials(t *testing.T) {
	amqpURL := NewVHost(t)
	StartWorker(t, amqpURL)
	// a copy of testdata/auth/api_keys, which a subtest extends
	keysFile := filepath.Join(t.TempDir(), "api_keys")
	keys, err := os.ReadFile(filepath.Join(repoRoot(), "testdata/auth/api_keys"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keysFile, keys, 0o600); err != nil {
		t.Fatal(err)
	}
	g := startExample(t, amqpURL, map[string]string{"API_KEYS_FILE": keysFile})
	scrape := g.URL + "/scrape"
	good := MintToken(t, GatewaySecret, "alice", time.Hour, nil)
	waitEchoAs(t, g, Bearer(good))

	now := time.Now()
	hs := func(secret string, claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	claims := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"client_id": "alice", "type": "access", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
		mod(c)
		return c
	}
	b64 := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }
	none := b64(map[string]string{"alg": "none", "typ": "JWT"}) + "." + b64(claims(func(jwt.MapClaims) {})) + "."

	refusals := []struct {
		name   string
		hdr    map[string]string
		reason string
	}{
		{"missing", nil, "missing credentials: send Authorization: Bearer <token> or X-API-Key: <key>"},
		{"not bearer", map[string]string{"Authorization": "Basic YTpi"}, "the Authorization header must be Bearer <token>"},
		{"empty", map[string]string{"Authorization": "Bearer "}, "empty bearer token"},
		{"malformed", map[string]string{"Authorization": "Bearer not.a.jwt"}, "malformed token"},
		{"alg none", Bearer(none), "algorithm none is not accepted"},
		{"wrong secret", Bearer(hs("not-the-gateway-secret-0123456789abcdef", claims(func(jwt.MapClaims) {}))), "invalid signature"},
		{"expired", Bearer(hs(GatewaySecret, claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Minute).Unix() }))), "token expired"},
		{"not yet valid", Bearer(hs(GatewaySecret, claims(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() }))), "token not valid yet (nbf)"},
		{"no exp", Bearer(hs(GatewaySecret, claims(func(c jwt.MapClaims) { delete(c, "exp") }))), "token has no exp claim"},
		{"wrong type", Bearer(MintToken(t, GatewaySecret, "alice", time.Hour, map[string]any{"type": "refresh"})), "token type must be access"},
		{"no client id", Bearer(hs(GatewaySecret, claims(func(c jwt.MapClaims) { delete(c, "client_id") }))), "token has no client id (claim client_id)"},
		{"oversized", Bearer(MintToken(t, GatewaySecret, "alice", time.Hour, map[string]any{"pad": strings.Repeat("x", 9000)})), "token too large (more than 8192 bytes)"},
		{"wrong API key", map[string]string{"X-API-Key": "sg_not-a-key"}, "invalid API key"},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := PostJSON(t, scrape, `{"script_name":"echo"}`, tc.hdr)
			eb := expect401(t, resp, b, tc.reason)
			if !strings.Contains(eb.Error, "인증") {
				t.Errorf("default message %q is not Korean", eb.Error)
			}
			if strings.Contains(string(b), GatewaySecret) {
				t.Fatal("the secret leaked")
			}
		})
	}
	t.Run("refusals logged once", func(t *testing.T) {
		// the access log skips /scrape: scrape_error logs what jwt_auth
		// refused before scrape_rpc could
		waitLog(t, g.Logs, 5*time.Second, `"msg":"request refused"`, `"path":"/scrape"`, `"status":401`, `"code":"UNAUTHORIZED"`)
		// a query token (how browsers authenticate /ws) never reaches that
		// line: the access log's filter, which redacts it, is skipped here
		marker := "leak-check-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		resp, b := PostJSON(t, scrape+"?token="+marker, `{"script_name":"echo"}`, nil)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("POST /scrape?token=...: %d %s", resp.StatusCode, b)
		}
		var eb struct {
			RequestID string `json:"request_id"`
		}
		if err := json.Unmarshal(b, &eb); err != nil || eb.RequestID == "" {
			t.Fatalf("401 body without a request id: %s", b)
		}
		waitLog(t, g.Logs, 5*time.Second, `"msg":"request refused"`, `"request_id":"`+eb.RequestID+`"`, `"path":"/scrape"`)
		if strings.Contains(g.Logs(), marker) {
			t.Fatalf("the query token is in the gateway's log:\n%s", logLine(g.Logs(), marker))
		}
	})
	t.Run("english", func(t *testing.T) {
		resp, b := PostJSON(t, scrape, `{}`, map[string]string{"Accept-Language": "en"})
		if eb := expect401(t, resp, b, refusals[0].reason); !strings.HasPrefix(eb.Error, "Authentication required") {
			t.Fatalf("message %q", eb.Error)
		}
	})
	t.Run("other routes", func(t *testing.T) {
		for _, path := range []string{"/status", "/ws", "/scripts"} {
			resp, b := do(t, http.MethodGet, g.URL+path, "", nil)
			expect401(t, resp, b, refusals[0].reason)
		}
		for _, path := range []string{"/health", "/", "/openapi.json", "/docs"} {
			if resp, b := do(t, http.MethodGet, g.URL+path, "", nil); resp.StatusCode != http.StatusOK {
				t.Errorf("GET %s without credentials: %d %.200s", path, resp.StatusCode, b)
			}
		}
	})

	t.Run("accepted", func(t *testing.T) {
		for name, hdr := range map[string]map[string]string{
			"token":   Bearer(good),
			"API key": {"X-API-Key": testAPIKey},
			"token from the scrapegate token command": Bearer(strings.TrimSpace(runGateway(t, map[string]string{"JWT_SECRET_KEY": GatewaySecret},
				"token", "--client-id", "cli-client", "--ttl", "10m"))),
		} {
			resp, b := PostJSON(t, scrape, `{"script_name":"echo","parameters":{"n":1}}`, hdr)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: %d %s", name, resp.StatusCode, b)
			}
			var res scrapeResult
			if err := json.Unmarshal(b, &res); err != nil || res.Status != "completed" {
				t.Fatalf("%s: %s", name, b)
			}
			if resp, b := do(t, http.MethodGet, g.URL+"/status", "", hdr); resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: GET /status %d %.200s", name, resp.StatusCode, b)
			}
		}
		// the access log names the client, and shows no key; /scrape
		// skips it (log_skip): scrape_rpc's one line per call names the
		// client there
		waitLog(t, g.Logs, 5*time.Second, `"user_id":"key-client"`, `"uri":"/status"`, `"X-Api-Key":"REDACTED"`)
		waitLog(t, g.Logs, 5*time.Second, `"user_id":"cli-client"`, `"uri":"/status"`)
		for _, client := range []string{"key-client", "cli-client"} {
			waitLog(t, g.Logs, 5*time.Second, `"msg":"scrape call"`, `"client_id":"`+client+`"`, `"client_ip":"127.0.0.1"`, `"status":200`)
		}
		if line := logLine(g.Logs(), `"logger":"http.log.access`, `"uri":"/scrape"`); line != "" {
			t.Errorf("the access log has a /scrape request; the example Caddyfile skips them: %s", line)
		}
		if strings.Contains(g.Logs(), testAPIKey) || strings.Contains(g.Logs(), good) {
			t.Fatal("a credential is in the gateway's log")
		}
	})

	t.Run("new API key through a reload", func(t *testing.T) {
		out := runGateway(t, nil, "apikey", "--client-id", "fresh-client")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[1], "api_key ") {
			t.Fatalf("apikey printed %q", out)
		}
		key := lines[0]
		if resp, b := PostJSON(t, scrape, `{"script_name":"echo"}`, map[string]string{"X-API-Key": key}); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("unknown key: %d %s", resp.StatusCode, b)
		}
		// add the line to the keys file and reload the config, as an operator does
		if err := os.WriteFile(keysFile, append(keys, []byte(lines[1]+"\n")...), 0o600); err != nil {
			t.Fatal(err)
		}
		g.Reload(t, "Caddyfile")
		waitEchoAs(t, g, map[string]string{"X-API-Key": key})
		waitEchoAs(t, g, map[string]string{"X-API-Key": testAPIKey})
		waitEchoAs(t, g, Bearer(good))
	})
}

// runGateway runs the gateway binary with args and env and returns its
// stdout; it fails the test on a non-zero exit.
func runGateway(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bins.Gateway, args...)
	cmd.Env = baseEnv(t)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scrapegate %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// TestAuthNoSecret checks that the example Caddyfile refuses to start
// without JWT_SECRET_KEY: there is no unauthenticated fallback.
func TestAuthNoSecret(t *testing.T) {
	cmd := exec.Command(bins.Gateway, "run", "--config", filepath.Join(repoRoot(), "Caddyfile"), "--adapter", "caddyfile")
	cmd.Env = append(baseEnv(t), fmt.Sprintf("SCRAPEGATE_ADDR=:%d", FreePort(t)),
		fmt.Sprintf("SCRAPEGATE_ADMIN=127.0.0.1:%d", FreePort(t)), "AMQP_URL=amqp://guest:guest@127.0.0.1:5672/none")
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatal("the gateway started without a JWT secret")
	}
	if err == nil || !strings.Contains(string(out), "secret is empty") {
		t.Fatalf("exit %v, output:\n%s", err, tail(string(out), 20))
	}
}

// TestAuthJWKSRotation rotates the signing key through a JWKS file while
// calls continue through a real gateway: no call with the key in use fails,
// and the retired key is refused once it is gone.
func TestAuthJWKSRotation(t *testing.T) {
	amqpURL := NewVHost(t)
	StartWorker(t, amqpURL)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	rsaJWK := map[string]string{"kty": "RSA", "kid": "old", "alg": "RS256", "use": "sig",
		"n": b64(rsaKey.N.Bytes()), "e": b64(big.NewInt(int64(rsaKey.E)).Bytes())}
	ecRaw, _ := ecKey.PublicKey.Bytes()
	ecJWK := map[string]string{"kty": "EC", "kid": "new", "crv": "P-256", "x": b64(ecRaw[1:33]), "y": b64(ecRaw[33:])}
	file := filepath.Join(t.TempDir(), "jwks.json")
	write := func(keys ...map[string]string) {
		b, _ := json.Marshal(map[string]any{"keys": keys})
		if err := os.WriteFile(file+".tmp", b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(file+".tmp", file); err != nil {
			t.Fatal(err)
		}
	}
	write(rsaJWK)
	token := func(method jwt.SigningMethod, key any, kid string) string {
		now := time.Now()
		tok := jwt.NewWithClaims(method, jwt.MapClaims{"client_id": "rotating", "type": "access", "iat": now.Unix(),
			"exp": now.Add(time.Hour).Unix(), "iss": "https://issuer.e2e.test", "aud": "scrapegate-e2e"})
		tok.Header["kid"] = kid
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	oldTok, newTok := token(jwt.SigningMethodRS256, rsaKey, "old"), token(jwt.SigningMethodES256, ecKey, "new")

	g := StartGateway(t, "testdata/auth/jwks.Caddyfile", map[string]string{"AMQP_URL": amqpURL, "JWKS_FILE": file})
	waitEchoAs(t, g, Bearer(oldTok))
	if resp, b := PostJSON(t, g.URL+"/scrape", `{"script_name":"echo"}`, Bearer(newTok)); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unpublished key: %d %s", resp.StatusCode, b)
	}

	var active atomic.Pointer[string]
	active.Store(&oldTok)
	var calls, failures atomic.Int64
	var firstFailure atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, body := tryPost(g.URL+"/scrape", `{"script_name":"echo"}`, Bearer(*active.Load()))
				calls.Add(1)
				if code != http.StatusOK {
					failures.Add(1)
					firstFailure.CompareAndSwap(nil, fmt.Sprintf("%d %s", code, body))
				}
			}
		})
	}
	stopCalls := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopCalls()

	time.Sleep(time.Second)
	write(rsaJWK, ecJWK)  // publish the new key...
	active.Store(&newTok) // ...and sign with it at once
	time.Sleep(time.Second)
	write(ecJWK) // retire the old key
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, b := PostJSON(t, g.URL+"/scrape", `{"script_name":"echo"}`, Bearer(oldTok))
		if resp.StatusCode == http.StatusUnauthorized {
			expect401(t, resp, b, "unknown key id (kid)")
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the retired key still works: %d %s", resp.StatusCode, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	stopCalls()
	if failures.Load() != 0 {
		t.Fatalf("%d of %d calls failed during the rotation; first: %v", failures.Load(), calls.Load(), firstFailure.Load())
	}
	t.Logf("%d calls during the rotation, none failed", calls.Load())
}

// tryPost posts body and returns the status and body; transport errors are
// status 0. Safe in goroutines (it never fails the test).
func tryPost(url, body string, hdr map[string]string) (int, string) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	return resp.StatusCode, readAll(resp)
}

// TestAuthCORS checks the example Caddyfile's CORS: a preflight from an
// allowed origin is answered without credentials, one from another origin
// is refused, and errors carry the CORS headers so a page can read them.
func TestAuthCORS(t *testing.T) {
	amqpURL := NewVHost(t)
	g := startExample(t, amqpURL, map[string]string{"CORS_ORIGINS": "http://localhost:3000 https://app.e2e.test"})
	pre := map[string]string{"Origin": "https://app.e2e.test", "Access-Control-Request-Method": "POST",
		"Access-Control-Request-Headers": "authorization, content-type"}
	resp, b := do(t, http.MethodOptions, g.URL+"/scrape", "", pre)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("preflight: %d %s", resp.StatusCode, b)
	}
	h := resp.Header
	if h.Get("Access-Control-Allow-Origin") != "https://app.e2e.test" || !strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") ||
		!strings.Contains(h.Get("Access-Control-Allow-Headers"), "X-API-Key") || !strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") ||
		h.Get("Access-Control-Max-Age") == "" || h.Get("Access-Control-Allow-Credentials") != "" || !strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") {
		t.Fatalf("preflight headers: %v", h)
	}
	pre["Origin"] = "https://evil.e2e.test"
	resp, b = do(t, http.MethodOptions, g.URL+"/scrape", "", pre)
	if resp.StatusCode != http.StatusForbidden || decodeError(t, resp, b).Code != "FORBIDDEN" || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("foreign preflight: %d %v %s", resp.StatusCode, resp.Header, b)
	}
	// a 401 for an allowed origin is readable by the page
	resp, b = PostJSON(t, g.URL+"/scrape", `{}`, map[string]string{"Origin": "http://localhost:3000"})
	expect401(t, resp, b, "missing credentials: send Authorization: Bearer <token> or X-API-Key: <key>")
	if resp.Header.Get("Access-Control-Allow-Origin") != "http://localhost:3000" || !strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "Retry-After") {
		t.Fatalf("401 headers: %v", resp.Header)
	}
}

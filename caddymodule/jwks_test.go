package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"

	"github.com/caddyserver/caddy/v2"
)

// eventually polls cond every 10ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestJWKSFileRotation rotates keys through a JWKS file while calls
// continue: not one call with the key in use fails. The new key is used
// the moment it is in the file (an unknown kid re-reads a changed file),
// and the old key is refused once it is gone.
func TestJWKSFileRotation(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	k := testKeys()
	dir := t.TempDir()
	file := filepath.Join(dir, "jwks.json")
	writeFileAtomic(t, file, jwksJSON(publicJWK("k1", "RS256", &k.rsa.PublicKey)))

	p := &JWTProvider{JWKSFiles: []string{file}, JWKSRefresh: caddy.Duration(50 * time.Millisecond)}
	if err := p.Provision(testContext(t)); err != nil {
		t.Fatal(err)
	}
	tok1 := sign(t, jwt.SigningMethodRS256, k.rsa, "k1", accessClaims("alice"))
	tok2 := sign(t, jwt.SigningMethodES256, k.ec, "k2", accessClaims("alice"))
	var active atomic.Pointer[string]
	active.Store(&tok1)

	var calls, failures atomic.Int64
	var firstFailure atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	stopCalls := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopCalls()
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				tok := *active.Load()
				_, reason, err := p.verify(bearerRequest("Bearer " + tok))
				calls.Add(1)
				if reason != "" || err != nil {
					failures.Add(1)
					firstFailure.CompareAndSwap(nil, reason)
				}
			}
		})
	}
	pause := func() { time.Sleep(100 * time.Millisecond) }

	pause()
	// publish k2 next to k1, then sign with k2 at once
	writeFileAtomic(t, file, jwksJSON(publicJWK("k1", "RS256", &k.rsa.PublicKey), publicJWK("k2", "ES256", &k.ec.PublicKey)))
	active.Store(&tok2)
	pause()
	// retire k1
	writeFileAtomic(t, file, jwksJSON(publicJWK("k2", "ES256", &k.ec.PublicKey)))
	eventually(t, 3*time.Second, "k1 refused after its removal", func() bool {
		_, reason, _ := p.verify(bearerRequest("Bearer " + tok1))
		return reason == "unknown key id (kid)"
	})
	// a broken file keeps the keys that were good
	if err := os.WriteFile(file, []byte(`{"keys": [`), 0o600); err != nil {
		t.Fatal(err)
	}
	pause()
	stopCalls()

	if failures.Load() != 0 {
		t.Fatalf("%d of %d calls failed during the rotation; first: %v", failures.Load(), calls.Load(), firstFailure.Load())
	}
	if calls.Load() < 100 {
		t.Fatalf("only %d calls made", calls.Load())
	}
	t.Logf("%d calls during the rotation, none failed", calls.Load())
	if err := p.Cleanup(); err != nil {
		t.Fatal(err)
	}
}

// TestJWKSURL downloads keys from a URL: not in Provision, at the first
// token, again every refresh (rotation), and keeps them when the server
// fails.
func TestJWKSURL(t *testing.T) {
	k := testKeys()
	var doc atomic.Value
	doc.Store(jwksJSON(publicJWK("u1", "EdDSA", k.ed.Public())))
	var hits atomic.Int64
	var failing atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if failing.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(doc.Load().([]byte))
	}))
	defer srv.Close()
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	p := &JWTProvider{JWKSURLs: []string{srv.URL + "/jwks.json"}, JWKSRefresh: caddy.Duration(50 * time.Millisecond)}
	if err := p.Provision(testContext(t)); err != nil {
		t.Fatal(err)
	}
	if hits.Load() != 0 {
		t.Fatal("Provision downloaded the JWKS")
	}
	tokU1 := sign(t, jwt.SigningMethodEdDSA, k.ed, "u1", accessClaims("alice"))
	if _, reason, _ := p.verify(bearerRequest("Bearer " + tokU1)); reason != "" {
		t.Fatalf("first token: %q", reason)
	}
	// rotate on the server: u2 replaces u1
	doc.Store(jwksJSON(publicJWK("u2", "RS256", &k.rsa.PublicKey)))
	tokU2 := sign(t, jwt.SigningMethodRS256, k.rsa, "u2", accessClaims("bob"))
	eventually(t, 3*time.Second, "u2 accepted", func() bool {
		_, reason, _ := p.verify(bearerRequest("Bearer " + tokU2))
		return reason == ""
	})
	if _, reason, _ := p.verify(bearerRequest("Bearer " + tokU1)); reason != "unknown key id (kid)" {
		t.Fatalf("u1 after rotation: %q", reason)
	}
	// a failing key server keeps the last good keys
	failing.Store(true)
	before := hits.Load()
	eventually(t, 3*time.Second, "refresh attempts while down", func() bool { return hits.Load() > before+2 })
	if _, reason, _ := p.verify(bearerRequest("Bearer " + tokU2)); reason != "" {
		t.Fatalf("u2 while the key server is down: %q", reason)
	}
	if err := p.Cleanup(); err != nil {
		t.Fatal(err)
	}
	// no refresh after Cleanup
	after := hits.Load()
	time.Sleep(150 * time.Millisecond)
	if hits.Load() != after {
		t.Fatal("the JWKS was downloaded after Cleanup")
	}
}

// TestJWKSURLUnreachable checks that a token waits boundedly for a key
// server that never answers, and is refused.
func TestJWKSURLUnreachable(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	// a listener that accepts nothing useful: a closed server
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	p := &JWTProvider{JWKSURLs: []string{url}}
	if err := p.Provision(testContext(t)); err != nil {
		t.Fatal(err)
	}
	k := testKeys()
	start := time.Now()
	_, reason, err := p.verify(bearerRequest("Bearer " + sign(t, jwt.SigningMethodRS256, k.rsa, "x", accessClaims("a"))))
	if err != nil || reason != "unknown key id (kid)" {
		t.Fatalf("verify = %q, %v", reason, err)
	}
	if d := time.Since(start); d > jwksWait+time.Second {
		t.Fatalf("waited %v", d)
	}
	if err := p.Cleanup(); err != nil {
		t.Fatal(err)
	}
}

// TestParseJWKS checks which keys of a key set are used.
func TestParseJWKS(t *testing.T) {
	k := testKeys()
	rsaJWK := publicJWK("r", "", &k.rsa.PublicKey)
	enc := publicJWK("enc", "RS256", &k.rsa.PublicKey)
	enc["use"] = "enc"
	wrongAlg := publicJWK("w", "ES256", &k.rsa.PublicKey)
	badCurve := publicJWK("c", "", &k.ec.PublicKey)
	badCurve["crv"] = "P-192"
	badPoint := publicJWK("p", "", &k.ec.PublicKey)
	badPoint["y"] = badPoint["x"]
	oct := map[string]string{"kty": "oct", "k": "c2VjcmV0", "kid": "o"}
	ks, skipped, err := parseJWKS(jwksJSON(rsaJWK, enc, wrongAlg, badCurve, badPoint, oct))
	if err != nil {
		t.Fatal(err)
	}
	if len(ks.keys) != 1 || ks.keys[0].kid != "r" || ks.keys[0].alg != "RS256" {
		t.Fatalf("keys = %+v", ks.keys)
	}
	if len(skipped) != 5 {
		t.Fatalf("skipped = %q", skipped)
	}
	for _, bad := range []string{``, `[]`, `{"keys": 3}`, `{"keys": []}`, `{"keys": [{"kty": "oct", "k": "AA"}]}`} {
		if _, _, err := parseJWKS([]byte(bad)); err == nil {
			t.Errorf("parseJWKS(%q) succeeded", bad)
		}
	}
}

package caddymodule

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/caddyserver/caddy/v2"
)

// fakeJWTClock makes jwtNow return the time it is set to, until the test
// ends.
func fakeJWTClock(t *testing.T, start time.Time) (set func(time.Time)) {
	t.Helper()
	var mu sync.Mutex
	now := start
	jwtNow = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	t.Cleanup(func() { jwtNow = time.Now })
	return func(at time.Time) {
		mu.Lock()
		now = at
		mu.Unlock()
	}
}

// TestJWTCacheValidity checks that a cached token is served only within
// the window its verification computed: it expires at exp + leeway, and
// before nbf - leeway (a clock that went back) it is refused as before.
func TestJWTCacheValidity(t *testing.T) {
	t0 := time.Unix(1_900_000_000, 0)
	setNow := fakeJWTClock(t, t0)
	p := provisionJWT(t, &JWTProvider{Secret: testSecret, Leeway: caddy.Duration(5 * time.Second)})
	if p.cache == nil || p.cache.max != jwtCacheSize {
		t.Fatalf("provisioned cache = %+v, want one of %d entries", p.cache, jwtCacheSize)
	}
	verifyAt := func(tok string, at time.Time) (string, map[string]string) {
		t.Helper()
		setNow(at)
		user, reason, err := p.verify(bearerRequest("Bearer " + tok))
		if err != nil {
			t.Fatalf("verify at %s: %v", at.Sub(t0), err)
		}
		if reason == "" && user.ID != "alice" {
			t.Fatalf("verify at %s: user %q, want alice", at.Sub(t0), user.ID)
		}
		return reason, user.Metadata
	}

	tok := sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", jwt.MapClaims{
		"client_id": "alice", "type": "access", "role": "admin",
		"iat": t0.Add(-time.Minute).Unix(), "exp": t0.Add(10 * time.Second).Unix(),
	})
	if reason, _ := verifyAt(tok, t0); reason != "" {
		t.Fatalf("fresh token refused: %s", reason)
	}
	if n := p.cache.len(); n != 1 {
		t.Fatalf("cache holds %d tokens after one verification, want 1", n)
	}

	// served from the cache: with the secret swapped, only the cache can
	// accept it
	static := p.static
	p.static = &keySet{keys: []verificationKey{{alg: "HS256", key: []byte("another-secret-0123456789abcdefgh")}}}
	reason, md := verifyAt(tok, t0.Add(14*time.Second))
	if reason != "" || md["role"] != "admin" || md["auth_method"] != "jwt" {
		t.Fatalf("cached token within exp+leeway: reason %q, metadata %v", reason, md)
	}
	md["role"] = "changed by a caller"
	if _, md := verifyAt(tok, t0.Add(14*time.Second)); md["role"] != "admin" {
		t.Fatalf("a caller's change of the metadata reached the cache: %v", md)
	}
	p.static = static

	// exp + leeway is exclusive, as golang-jwt has it
	if reason, _ := verifyAt(tok, t0.Add(15*time.Second)); reason != "token expired" {
		t.Fatalf("cached token at exp+leeway: reason %q, want token expired", reason)
	}
	if n := p.cache.len(); n != 0 {
		t.Fatalf("expired token still cached (%d entries)", n)
	}

	// nbf: verified within the leeway, then the clock goes back
	early := sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", jwt.MapClaims{
		"client_id": "alice", "type": "access",
		"iat": t0.Unix(), "nbf": t0.Add(100 * time.Second).Unix(), "exp": t0.Add(time.Hour).Unix(),
	})
	if reason, _ := verifyAt(early, t0.Add(96*time.Second)); reason != "" {
		t.Fatalf("token within nbf-leeway refused: %s", reason)
	}
	if reason, _ := verifyAt(early, t0.Add(94*time.Second)); reason != "token not valid yet (nbf)" {
		t.Fatalf("cached token before nbf-leeway: reason %q", reason)
	}
	if reason, _ := verifyAt(early, t0.Add(95*time.Second)); reason != "" {
		t.Fatalf("cached token at nbf-leeway refused: %s", reason)
	}

	// iat counts like nbf
	issued := sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", jwt.MapClaims{
		"client_id": "alice", "type": "access", "iat": t0.Add(200 * time.Second).Unix(), "exp": t0.Add(time.Hour).Unix(),
	})
	if reason, _ := verifyAt(issued, t0.Add(196*time.Second)); reason != "" {
		t.Fatalf("token within iat-leeway refused: %s", reason)
	}
	if reason, _ := verifyAt(issued, t0.Add(190*time.Second)); reason != "token issued in the future (iat)" {
		t.Fatalf("cached token before iat-leeway: reason %q", reason)
	}

	// per provider: another provider (another secret) refuses it
	other := provisionJWT(t, &JWTProvider{Secret: "another-secret-0123456789abcdefgh"})
	setNow(t0)
	if _, reason, _ := other.verify(bearerRequest("Bearer " + tok)); reason != "invalid signature" {
		t.Fatalf("another provider: reason %q, want invalid signature", reason)
	}
}

// TestJWTCacheRefusalsNotCached checks that refused tokens leave the cache
// empty and are refused again with the same reason.
func TestJWTCacheRefusalsNotCached(t *testing.T) {
	p := provisionJWT(t, &JWTProvider{Secret: testSecret})
	with := func(mod func(jwt.MapClaims)) string {
		c := accessClaims("alice")
		mod(c)
		return sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", c)
	}
	for _, tc := range []struct{ name, token, reason string }{
		{"expired", with(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() }), "token expired"},
		{"not yet valid", with(func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(time.Hour).Unix() }), "token not valid yet (nbf)"},
		{"wrong type", with(func(c jwt.MapClaims) { c["type"] = "refresh" }), "token type must be access"},
		{"no client id", with(func(c jwt.MapClaims) { delete(c, "client_id") }), "token has no client id (claim client_id)"},
		{"tampered", tamper(with(func(jwt.MapClaims) {})), "invalid signature"},
		{"wrong secret", sign(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789abcdefgh"), "", accessClaims("alice")), "invalid signature"},
	} {
		for range 2 {
			if _, reason, err := p.verify(bearerRequest("Bearer " + tc.token)); reason != tc.reason || err != nil {
				t.Errorf("%s: reason %q (err %v), want %q", tc.name, reason, err, tc.reason)
			}
		}
		if n := p.cache.len(); n != 0 {
			t.Fatalf("%s: the refusal was cached (%d entries)", tc.name, n)
		}
	}
}

// TestJWTCacheCap checks that the cache never holds more than its size,
// also under concurrent use, and that every token still authenticates its
// own client.
func TestJWTCacheCap(t *testing.T) {
	p := provisionJWT(t, &JWTProvider{Secret: testSecret})
	p.cache = newTokenCache(3)
	tokens := make([]string, 12)
	for i := range tokens {
		tokens[i] = sign(t, jwt.SigningMethodHS256, []byte(testSecret), "", accessClaims(fmt.Sprint("client-", i)))
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for n := range 50 {
				i := (g*5 + n) % len(tokens)
				user, reason, err := p.verify(bearerRequest("Bearer " + tokens[i]))
				if reason != "" || err != nil || user.ID != fmt.Sprint("client-", i) {
					t.Errorf("token %d: user %q, reason %q, err %v", i, user.ID, reason, err)
					return
				}
				if n := p.cache.len(); n > 3 {
					t.Errorf("cache holds %d tokens, more than its 3", n)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := p.cache.len(); n != 3 {
		t.Fatalf("cache holds %d tokens after many, want its size 3", n)
	}
}

// TestJWTCacheKeyRotation checks that a token cached while its key was in
// the JWKS is refused once a refresh removed the key.
func TestJWTCacheKeyRotation(t *testing.T) {
	k := testKeys()
	file := filepath.Join(t.TempDir(), "jwks.json")
	writeFileAtomic(t, file, jwksJSON(publicJWK("k1", "RS256", &k.rsa.PublicKey)))
	p := provisionJWT(t, &JWTProvider{JWKSFiles: []string{file}, JWKSRefresh: caddy.Duration(time.Hour)})
	tok1 := sign(t, jwt.SigningMethodRS256, k.rsa, "k1", accessClaims("alice"))
	tok2 := sign(t, jwt.SigningMethodES256, k.ec, "k2", accessClaims("bob"))

	// the refresher's first run publishes the keys anew: verify until the
	// result was kept
	eventually(t, 3*time.Second, "k1 token cached", func() bool {
		if _, reason, _ := p.verify(bearerRequest("Bearer " + tok1)); reason != "" {
			t.Fatalf("k1 token refused: %s", reason)
		}
		return p.cache.len() == 1
	})

	writeFileAtomic(t, file, jwksJSON(publicJWK("k2", "ES256", &k.ec.PublicKey)))
	p.jwks.refresh(testContext(t), false)
	if _, reason, _ := p.verify(bearerRequest("Bearer " + tok1)); reason != "unknown key id (kid)" {
		t.Fatalf("cached k1 token after k1's removal: reason %q, want unknown key id (kid)", reason)
	}
	if user, reason, _ := p.verify(bearerRequest("Bearer " + tok2)); reason != "" || user.ID != "bob" {
		t.Fatalf("k2 token: user %q, reason %q", user.ID, reason)
	}
	if n := p.cache.len(); n != 1 {
		t.Fatalf("cache holds %d tokens after the rotation, want only the k2 token", n)
	}
	if _, reason, _ := p.verify(bearerRequest("Bearer " + tok1)); reason != "unknown key id (kid)" {
		t.Fatalf("k1 token again: reason %q", reason)
	}
}

// TestJWTCacheSurvivesUnchangedRefresh checks that a JWKS refresh that
// found the same keys keeps the key set, so verified tokens stay cached.
func TestJWTCacheSurvivesUnchangedRefresh(t *testing.T) {
	k := testKeys()
	file := filepath.Join(t.TempDir(), "jwks.json")
	writeFileAtomic(t, file, jwksJSON(publicJWK("k1", "RS256", &k.rsa.PublicKey)))
	p := provisionJWT(t, &JWTProvider{JWKSFiles: []string{file}, JWKSRefresh: caddy.Duration(time.Hour)})
	before := p.jwksKeys()
	// the same keys, written anew: the file changed, its keys did not
	writeFileAtomic(t, file, jwksJSON(publicJWK("k1", "RS256", &k.rsa.PublicKey)))
	p.jwks.refresh(testContext(t), false)
	if p.jwksKeys() != before {
		t.Fatal("a refresh that found the same keys published a new set")
	}
	writeFileAtomic(t, file, jwksJSON(publicJWK("k1", "ES256", &k.ec.PublicKey)))
	p.jwks.refresh(testContext(t), false)
	if p.jwksKeys() == before {
		t.Fatal("a refresh that found another key kept the old set")
	}
}

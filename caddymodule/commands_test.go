package caddymodule

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestMintToken checks that `scrapegate token` makes tokens jwt_auth
// accepts, with each kind of key, and refuses bad input.
func TestMintToken(t *testing.T) {
	k := testKeys()
	dir := t.TempDir()
	hs := provisionJWT(t, &JWTProvider{Secret: testSecret})
	pub := provisionJWT(t, &JWTProvider{PublicKeys: []JWTPublicKey{
		{File: writePublicPEM(t, dir, "rsa.pub", &k.rsa.PublicKey), KID: "r"},
		{File: writePublicPEM(t, dir, "ec.pub", &k.ec.PublicKey)},
		{File: writePublicPEM(t, dir, "ed.pub", k.ed.Public())},
	}})
	read := func(name string, key any) []byte {
		b, err := os.ReadFile(writePrivatePEM(t, dir, name, key))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	now := time.Now()
	tests := []struct {
		name string
		p    *JWTProvider
		o    tokenOptions
	}{
		{"secret", hs, tokenOptions{clientID: "alice", ttl: time.Hour, secret: testSecret}},
		{"secret with role and claims", hs, tokenOptions{clientID: "alice", ttl: time.Minute, secret: testSecret, role: "admin",
			claims: []string{"plan=pro", `quota:=5`, `aud:=["x"]`}}},
		{"RS256 key", pub, tokenOptions{clientID: "bob", ttl: time.Hour, keyPEM: read("rsa.key", k.rsa), kid: "r"}},
		{"PS256 key", nil, tokenOptions{clientID: "bob", ttl: time.Hour, keyPEM: read("rsa2.key", k.rsa), alg: "PS256"}},
		{"ES256 key", pub, tokenOptions{clientID: "carol", ttl: time.Hour, keyPEM: read("ec.key", k.ec)}},
		{"EdDSA key", pub, tokenOptions{clientID: "dave", ttl: time.Hour, keyPEM: read("ed.key", k.ed)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.now = now
			tok, err := mintToken(tc.o)
			if err != nil {
				t.Fatal(err)
			}
			if tc.p == nil {
				return
			}
			user, reason, err := tc.p.verify(bearerRequest("Bearer " + tok))
			if err != nil || reason != "" || user.ID != tc.o.clientID {
				t.Fatalf("verify = %q, %q, %v", user.ID, reason, err)
			}
			if tc.o.role != "" && user.Metadata["role"] != tc.o.role {
				t.Fatalf("role = %q", user.Metadata["role"])
			}
			claims := jwt.MapClaims{}
			if _, _, err := jwt.NewParser().ParseUnverified(tok, claims); err != nil {
				t.Fatal(err)
			}
			if claims["type"] != "access" || claims["exp"].(float64)-claims["iat"].(float64) != tc.o.ttl.Seconds() {
				t.Fatalf("claims = %v", claims)
			}
		})
	}
	bad := map[string]tokenOptions{
		"no client":           {ttl: time.Hour, secret: testSecret},
		"no key":              {clientID: "a", ttl: time.Hour},
		"zero ttl":            {clientID: "a", secret: testSecret},
		"RS256 with a secret": {clientID: "a", ttl: time.Hour, secret: testSecret, alg: "RS256"},
		"bad claim":           {clientID: "a", ttl: time.Hour, secret: testSecret, claims: []string{"novalue"}},
		"bad json claim":      {clientID: "a", ttl: time.Hour, secret: testSecret, claims: []string{"x:={"}},
		"EC key as RS256":     {clientID: "a", ttl: time.Hour, keyPEM: read("ec2.key", k.ec), alg: "RS256"},
		"public key as key":   {clientID: "a", ttl: time.Hour, keyPEM: []byte("-----BEGIN PUBLIC KEY-----\nAA==\n-----END PUBLIC KEY-----\n")},
	}
	for name, o := range bad {
		if _, err := mintToken(o); err == nil {
			t.Errorf("%s: minted", name)
		}
	}
}

// TestDefaultTTL checks JWT_EXPIRES_HOURS.
func TestDefaultTTL(t *testing.T) {
	for in, want := range map[string]time.Duration{"": 24 * time.Hour, "1": time.Hour, "0.5": 30 * time.Minute} {
		if got, err := defaultTTL(in); err != nil || got != want {
			t.Errorf("defaultTTL(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"x", "0", "-1", "1e9"} {
		if _, err := defaultTTL(in); err == nil {
			t.Errorf("defaultTTL(%q) succeeded", in)
		}
	}
}

// TestNewAPIKey checks that `scrapegate apikey` output works when pasted
// into the Caddyfile or a keys file.
func TestNewAPIKey(t *testing.T) {
	key, line, err := newAPIKey(rand.Reader, "svc-1", "admin")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(key, "sg_") || len(key) != 3+43 || strings.Contains(line, key) {
		t.Fatalf("key %q, line %q", key, line)
	}
	file := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(file, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &APIKeyProvider{KeysFile: file}
	if err := p.Provision(testContext(t)); err != nil {
		t.Fatal(err)
	}
	if user, reason := p.check(key); user.ID != "svc-1" || user.Metadata["role"] != "admin" || reason != "" {
		t.Fatalf("check = %+v, %q", user, reason)
	}
	h := newTestJWTAuth(t, "jwt_auth {\n"+line+"\n}")
	if len(h.providers) != 1 {
		t.Fatalf("providers %v", h.providers)
	}
	// two keys differ
	key2, _, _ := newAPIKey(rand.Reader, "svc-1", "")
	if key2 == key {
		t.Fatal("same key twice")
	}
	if _, _, err := newAPIKey(bytes.NewReader(nil), "svc", ""); err == nil {
		t.Fatal("no randomness accepted")
	}
	for _, c := range []string{"", "a b", "a{b}", "a#b"} {
		if _, _, err := newAPIKey(rand.Reader, c, ""); err == nil {
			t.Errorf("client %q accepted", c)
		}
	}
}

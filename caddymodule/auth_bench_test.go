package caddymodule

import (
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// BenchmarkJWTVerify measures the cost jwt_auth adds to a request, per
// algorithm: header checks, key lookup, signature and claims of a token
// seen the first time (ALG), and of a token the cache verified before
// (ALG-cached).
func BenchmarkJWTVerify(b *testing.B) {
	k := testKeys()
	dir := b.TempDir()
	p := provisionJWT(b, &JWTProvider{Secret: testSecret, PublicKeys: []JWTPublicKey{
		{File: writePublicPEM(b, dir, "rsa.pem", &k.rsa.PublicKey)},
		{File: writePublicPEM(b, dir, "ec.pem", &k.ec.PublicKey)},
		{File: writePublicPEM(b, dir, "ed.pem", k.ed.Public())},
	}})
	for _, tc := range []struct {
		name   string
		method jwt.SigningMethod
		key    any
	}{
		{"HS256", jwt.SigningMethodHS256, []byte(testSecret)},
		{"RS256", jwt.SigningMethodRS256, k.rsa},
		{"ES256", jwt.SigningMethodES256, k.ec},
		{"EdDSA", jwt.SigningMethodEdDSA, k.ed},
	} {
		r := bearerRequest("Bearer " + sign(b, tc.method, tc.key, "", accessClaims("alice")))
		b.Run(tc.name, func(b *testing.B) {
			cache := p.cache
			p.cache = nil // every call verifies, as for a new token
			defer func() { p.cache = cache }()
			for b.Loop() {
				if _, reason, _ := p.verify(r); reason != "" {
					b.Fatal(reason)
				}
			}
		})
		b.Run(tc.name+"-cached", func(b *testing.B) {
			for b.Loop() {
				if _, reason, _ := p.verify(r); reason != "" {
					b.Fatal(reason)
				}
			}
		})
	}
}

// BenchmarkAPIKey measures an API key check among 1000 keys (every stored
// digest is compared, in constant time).
func BenchmarkAPIKey(b *testing.B) {
	p := &APIKeyProvider{}
	for i := range 1000 {
		key, line, _ := newAPIKey(randReader{byte(i), byte(i >> 8)}, "c", "")
		_ = key
		keys, _ := parseAPIKeys([]byte(line), "bench")
		p.Keys = append(p.Keys, keys...)
	}
	p.Keys = append(p.Keys, APIKey{Hash: testAPIKeyHash(), ClientID: "alice"})
	if err := p.Provision(testContext(b)); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, reason := p.check(testAPIKey); reason != "" {
			b.Fatal(reason)
		}
	}
}

// randReader is a deterministic "random" source for distinct keys.
type randReader [2]byte

func (r randReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r[i%2] ^ byte(i)
	}
	return len(p), nil
}

package caddymodule

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
)

// The JWT algorithms jwt_auth knows. A key accepts exactly one of them; the
// token's alg header is only a lookup hint, never trusted on its own.
var (
	hmacAlgorithms  = []string{"HS256", "HS384", "HS512"}
	rsaAlgorithms   = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	knownAlgorithms = slices.Concat(hmacAlgorithms, rsaAlgorithms, []string{"ES256", "ES384", "ES512", "EdDSA"})
)

// minRSABits is the smallest RSA modulus accepted for verification.
const minRSABits = 2048

// verificationKey is one key a token may be verified with, pinned to one
// algorithm.
type verificationKey struct {
	kid string
	alg string
	key any // []byte (HMAC), *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// keySet is an immutable set of verification keys.
type keySet struct {
	keys []verificationKey
}

// candidates returns the keys that may verify a token with header alg and
// kid: the keys of that kid (or, when no key carries that kid, the keys
// without a kid) whose algorithm is alg. kidKnown reports whether some key
// carries kid at all.
func (ks *keySet) candidates(alg, kid string) (keys []any, kidKnown bool) {
	if ks == nil {
		return nil, false
	}
	if kid != "" {
		for _, k := range ks.keys {
			if k.kid == kid {
				kidKnown = true
				if k.alg == alg {
					keys = append(keys, k.key)
				}
			}
		}
		if kidKnown {
			return keys, true
		}
	}
	for _, k := range ks.keys {
		if (kid == "" || k.kid == "") && k.alg == alg {
			keys = append(keys, k.key)
		}
	}
	return keys, false
}

// mergeKeySets returns a set holding the keys of every given set.
func mergeKeySets(sets ...*keySet) *keySet {
	out := new(keySet)
	for _, s := range sets {
		if s != nil {
			out.keys = append(out.keys, s.keys...)
		}
	}
	return out
}

// equal reports whether two sets hold the same keys in the same order.
func (ks *keySet) equal(o *keySet) bool {
	if ks == nil || o == nil {
		return ks == o
	}
	return slices.EqualFunc(ks.keys, o.keys, func(a, b verificationKey) bool {
		return a.kid == b.kid && a.alg == b.alg && sameKey(a.key, b.key)
	})
}

// sameKey reports whether two verification keys are the same key.
func sameKey(a, b any) bool {
	if ab, ok := a.([]byte); ok {
		bb, ok := b.([]byte)
		return ok && bytes.Equal(ab, bb)
	}
	ak, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ak.Equal(b)
}

// parsePublicKeyPEM parses a PEM file holding one public key (PKIX "PUBLIC
// KEY", PKCS#1 "RSA PUBLIC KEY" or a "CERTIFICATE") and pins it to alg, or
// to the default algorithm of its type when alg is empty.
func parsePublicKeyPEM(data []byte, alg, kid string) (verificationKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return verificationKey{}, errors.New("no PEM block found")
	}
	var pub any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		cert, err = x509.ParseCertificate(block.Bytes)
		if err == nil {
			pub = cert.PublicKey
		}
	default:
		return verificationKey{}, fmt.Errorf("PEM block %q is not a public key (private keys do not belong here)", block.Type)
	}
	if err != nil {
		return verificationKey{}, fmt.Errorf("parsing %s: %v", block.Type, err)
	}
	return pinKey(pub, alg, kid)
}

// pinKey checks that alg suits the public key pub (choosing the key type's
// default when alg is empty) and returns the pinned key.
func pinKey(pub any, alg, kid string) (verificationKey, error) {
	var allowed []string
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return verificationKey{}, fmt.Errorf("RSA key of %d bits is too small (at least %d)", k.N.BitLen(), minRSABits)
		}
		allowed = rsaAlgorithms
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			allowed = []string{"ES256"}
		case elliptic.P384():
			allowed = []string{"ES384"}
		case elliptic.P521():
			allowed = []string{"ES512"}
		default:
			return verificationKey{}, errors.New("unsupported elliptic curve")
		}
	case ed25519.PublicKey:
		allowed = []string{"EdDSA"}
	default:
		return verificationKey{}, fmt.Errorf("unsupported public key type %T", pub)
	}
	if alg == "" {
		alg = allowed[0]
	}
	if !slices.Contains(allowed, alg) {
		return verificationKey{}, fmt.Errorf("algorithm %s does not suit this key (use one of %s)", alg, strings.Join(allowed, ", "))
	}
	return verificationKey{kid: kid, alg: alg, key: pub}, nil
}

// jwk is one JSON Web Key (RFC 7517) as far as jwt_auth reads it.
type jwk struct {
	Kty    string   `json:"kty"`
	Kid    string   `json:"kid"`
	Alg    string   `json:"alg"`
	Use    string   `json:"use"`
	KeyOps []string `json:"key_ops"`
	Crv    string   `json:"crv"`
	N      string   `json:"n"`
	E      string   `json:"e"`
	X      string   `json:"x"`
	Y      string   `json:"y"`
}

// parseJWKS parses a JSON Web Key Set. Keys that are not for signatures
// (use other than "sig", key_ops without "verify") are skipped, and so are
// symmetric ("oct") keys: a shared secret has no place in a published key
// set. skipped says why each skipped key was left out. An error means the
// document is not a key set or holds no usable key.
func parseJWKS(data []byte) (ks *keySet, skipped []string, err error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("decoding JWKS: %v", err)
	}
	ks = new(keySet)
	for i, raw := range doc.Keys {
		var k jwk
		if err := json.Unmarshal(raw, &k); err != nil {
			skipped = append(skipped, fmt.Sprintf("key %d: %v", i, err))
			continue
		}
		vk, err := k.verificationKey()
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("key %d (kid %q): %v", i, k.Kid, err))
			continue
		}
		ks.keys = append(ks.keys, vk)
	}
	if len(ks.keys) == 0 {
		return nil, skipped, errors.New("the JWKS holds no usable signature key")
	}
	return ks, skipped, nil
}

// verificationKey converts the JWK into a pinned verification key.
func (k jwk) verificationKey() (verificationKey, error) {
	if k.Use != "" && k.Use != "sig" {
		return verificationKey{}, fmt.Errorf("use %q is not sig", k.Use)
	}
	if len(k.KeyOps) > 0 && !slices.Contains(k.KeyOps, "verify") {
		return verificationKey{}, errors.New("key_ops does not include verify")
	}
	if k.Alg != "" && !slices.Contains(knownAlgorithms, k.Alg) {
		return verificationKey{}, fmt.Errorf("unsupported alg %q", k.Alg)
	}
	var pub any
	switch k.Kty {
	case "RSA":
		n, err := b64url(k.N)
		if err != nil || len(n) == 0 {
			return verificationKey{}, errors.New("bad RSA modulus n")
		}
		e, err := b64url(k.E)
		if err != nil || len(e) == 0 || len(e) > 4 {
			return verificationKey{}, errors.New("bad RSA exponent e")
		}
		exp := new(big.Int).SetBytes(e).Int64()
		if exp < 3 || exp%2 == 0 {
			return verificationKey{}, errors.New("bad RSA exponent e")
		}
		pub = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(exp)}
	case "EC":
		var curve elliptic.Curve
		switch k.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return verificationKey{}, fmt.Errorf("unsupported curve %q", k.Crv)
		}
		size := (curve.Params().BitSize + 7) / 8
		x, errX := b64url(k.X)
		y, errY := b64url(k.Y)
		if errX != nil || errY != nil || len(x) != size || len(y) != size {
			return verificationKey{}, errors.New("bad EC point")
		}
		p, err := ecdsa.ParseUncompressedPublicKey(curve, slices.Concat([]byte{4}, x, y))
		if err != nil {
			return verificationKey{}, fmt.Errorf("bad EC point: %v", err)
		}
		pub = p
	case "OKP":
		if k.Crv != "Ed25519" {
			return verificationKey{}, fmt.Errorf("unsupported curve %q", k.Crv)
		}
		x, err := b64url(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return verificationKey{}, errors.New("bad Ed25519 key x")
		}
		pub = ed25519.PublicKey(x)
	case "oct":
		return verificationKey{}, errors.New("symmetric keys are not accepted from a JWKS")
	default:
		return verificationKey{}, fmt.Errorf("unsupported kty %q", k.Kty)
	}
	return pinKey(pub, k.Alg, k.Kid)
}

// b64url decodes unpadded base64url, tolerating padding.
func b64url(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

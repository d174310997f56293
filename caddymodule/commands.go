package caddymodule

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/spf13/cobra"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "token",
		Usage: "--client-id <id> [--ttl <duration>] [--secret <secret> | --key <private.pem> [--alg <alg>]] [--kid <kid>] [--role <role>] [--claim <k=v>]...",
		Short: "Mints an access token for jwt_auth",
		Long: `
Mints a JWT access token (claims: client_id, type "access", iat, exp) and
prints only the token on stdout, so that

	curl -H "Authorization: Bearer $(scrapegate token --client-id me)" ...

works. The token is signed with HS256 and the secret in --secret or, by
default, the environment variable JWT_SECRET_KEY (prefer the environment:
command lines are visible to other users). With --key, it is signed with a
private key from a PEM file instead: RSA (--alg RS256, the default for RSA
keys, RS384, RS512, PS256...), ECDSA (ES256 for P-256 keys) or Ed25519
(EdDSA). --kid sets the key id header.

The lifetime (--ttl) defaults to JWT_EXPIRES_HOURS hours (24 when unset).
--claim k=v adds or replaces a string claim; --claim k:=<json> a JSON one
(e.g. --claim 'aud:=["api"]'). The claim names and the type are those
jwt_auth checks by default.`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().String("client-id", "", "The client id (claim client_id); required")
			cmd.Flags().Duration("ttl", 0, "Lifetime of the token (default JWT_EXPIRES_HOURS hours, or 24h)")
			cmd.Flags().String("secret", "", "HMAC secret (default $JWT_SECRET_KEY)")
			cmd.Flags().String("key", "", "Private key PEM file, instead of a secret")
			cmd.Flags().String("alg", "", "Signing algorithm (default HS256, or that of --key)")
			cmd.Flags().String("kid", "", "Key id header")
			cmd.Flags().String("role", "", "Role claim (role)")
			cmd.Flags().StringArray("claim", nil, "Extra claim k=v (string) or k:=json; repeatable")
			cmd.RunE = caddycmd.WrapCommandFuncForCobra(cmdToken)
		},
	})
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "apikey",
		Usage: "--client-id <id> [--role <role>]",
		Short: "Makes a new API key and the hashed line for the config",
		Long: `
Makes a new random API key (256 bits) and prints two lines on stdout: the key,
to give to the client (it is stored nowhere), and the line to paste into a
jwt_auth block of the Caddyfile or into the API_KEYS_FILE:

	api_key <sha256-hex> <client_id> [<role>]`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().String("client-id", "", "The client id the key stands for; required")
			cmd.Flags().String("role", "", "The client's role")
			cmd.RunE = caddycmd.WrapCommandFuncForCobra(cmdAPIKey)
		},
	})
}

// tokenOptions are the inputs of mintToken.
type tokenOptions struct {
	clientID string
	ttl      time.Duration
	secret   string
	keyPEM   []byte
	alg      string
	kid      string
	role     string
	claims   []string // k=v or k:=json
	now      time.Time
}

// cmdToken runs `scrapegate token`.
func cmdToken(fl caddycmd.Flags) (int, error) {
	claims, err := fl.GetStringArray("claim")
	if err != nil {
		return 1, err
	}
	opts := tokenOptions{
		clientID: fl.String("client-id"),
		ttl:      fl.Duration("ttl"),
		secret:   fl.String("secret"),
		alg:      fl.String("alg"),
		kid:      fl.String("kid"),
		role:     fl.String("role"),
		claims:   claims,
		now:      time.Now(),
	}
	if opts.ttl == 0 {
		if opts.ttl, err = defaultTTL(os.Getenv("JWT_EXPIRES_HOURS")); err != nil {
			return 1, err
		}
	}
	if file := fl.String("key"); file != "" {
		if opts.secret != "" {
			return 1, errors.New("--secret and --key exclude each other")
		}
		if opts.keyPEM, err = os.ReadFile(file); err != nil {
			return 1, fmt.Errorf("reading --key: %v", err)
		}
	} else if opts.secret == "" {
		opts.secret = os.Getenv("JWT_SECRET_KEY")
	}
	token, err := mintToken(opts)
	if err != nil {
		return 1, err
	}
	fmt.Println(token)
	return 0, nil
}

// defaultTTL reads JWT_EXPIRES_HOURS (whole or fractional hours; 24 when
// empty).
func defaultTTL(hours string) (time.Duration, error) {
	if hours == "" {
		return 24 * time.Hour, nil
	}
	h, err := strconv.ParseFloat(hours, 64)
	if err != nil || h <= 0 || h > 24*366 {
		return 0, fmt.Errorf("JWT_EXPIRES_HOURS: %q is not a number of hours", hours)
	}
	return time.Duration(h * float64(time.Hour)), nil
}

// claimName is what --claim accepts as a claim name.
var claimName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// mintToken makes a signed access token.
func mintToken(o tokenOptions) (string, error) {
	if o.clientID == "" {
		return "", errors.New("--client-id is required")
	}
	if o.ttl <= 0 {
		return "", errors.New("--ttl must be positive")
	}
	claims := jwt.MapClaims{
		"client_id": o.clientID,
		"type":      accessTokenType,
		"iat":       o.now.Unix(),
		"exp":       o.now.Add(o.ttl).Unix(),
	}
	if o.role != "" {
		claims["role"] = o.role
	}
	for _, c := range o.claims {
		if k, v, ok := strings.Cut(c, ":="); ok && claimName.MatchString(k) {
			var val any
			if err := json.Unmarshal([]byte(v), &val); err != nil {
				return "", fmt.Errorf("--claim %s: not JSON: %v", k, err)
			}
			claims[k] = val
			continue
		}
		k, v, ok := strings.Cut(c, "=")
		if !ok || !claimName.MatchString(k) {
			return "", fmt.Errorf("--claim %q: want name=value or name:=json", c)
		}
		claims[k] = v
	}

	var key any
	alg := o.alg
	if len(o.keyPEM) > 0 {
		priv, err := parsePrivateKeyPEM(o.keyPEM)
		if err != nil {
			return "", fmt.Errorf("--key: %v", err)
		}
		if _, err := pinKey(priv.Public(), alg, o.kid); err != nil {
			return "", fmt.Errorf("--alg: %v", err)
		}
		if alg == "" {
			vk, _ := pinKey(priv.Public(), "", "")
			alg = vk.alg
		}
		key = priv
	} else {
		if o.secret == "" {
			return "", errors.New("no signing key: set JWT_SECRET_KEY (or --secret), or give --key")
		}
		if alg == "" {
			alg = DefaultJWTAlgorithm
		}
		if !slices.Contains(hmacAlgorithms, alg) {
			return "", fmt.Errorf("--alg %s needs --key (a secret signs only HS256, HS384, HS512)", alg)
		}
		key = []byte(o.secret)
	}
	method := jwt.GetSigningMethod(alg)
	if method == nil {
		return "", fmt.Errorf("--alg %s: unknown algorithm", alg)
	}
	t := jwt.NewWithClaims(method, claims)
	if o.kid != "" {
		t.Header["kid"] = o.kid
	}
	return t.SignedString(key)
}

// parsePrivateKeyPEM reads an RSA, ECDSA or Ed25519 private key (PKCS#8,
// PKCS#1 or SEC 1).
func parsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	var k any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", block.Type)
	}
	if err != nil {
		return nil, err
	}
	switch k := k.(type) {
	case *rsa.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("unsupported private key type %T", k)
}

// cmdAPIKey runs `scrapegate apikey`.
func cmdAPIKey(fl caddycmd.Flags) (int, error) {
	key, line, err := newAPIKey(rand.Reader, fl.String("client-id"), fl.String("role"))
	if err != nil {
		return 1, err
	}
	fmt.Println(key)
	fmt.Println(line)
	return 0, nil
}

// newAPIKey makes a key of 256 random bits ("sg_" and 43 base64url
// characters) and its config line.
func newAPIKey(random io.Reader, clientID, role string) (key, line string, err error) {
	if clientID == "" {
		return "", "", errors.New("--client-id is required")
	}
	if strings.ContainsAny(clientID+role, " \t\r\n\"'{}#") {
		return "", "", errors.New("--client-id and --role must not contain spaces, quotes, braces or #")
	}
	b := make([]byte, 32)
	if _, err := io.ReadFull(random, b); err != nil {
		return "", "", fmt.Errorf("reading random bytes: %v", err)
	}
	key = "sg_" + base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(key))
	line = "api_key " + hex.EncodeToString(sum[:]) + " " + clientID
	if role != "" {
		line += " " + role
	}
	return key, line, nil
}

package caddymodule

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
)

func init() {
	caddy.RegisterModule(new(APIKeyProvider))
}

const (
	// DefaultAPIKeyHeader is the request header that carries an API key.
	DefaultAPIKeyHeader = "X-API-Key"
	// maxAPIKeyLen bounds a presented API key; longer ones are refused
	// without hashing.
	maxAPIKeyLen = 512
	// maxAPIKeysFile bounds the size of a keys file.
	maxAPIKeysFile = 16 << 20
)

// APIKeyProvider authenticates requests by an API key in the X-API-Key
// header. It is the caddyauth provider
// `http.authentication.providers.scrapegate_api_key`.
//
// Keys are stored only as their SHA-256 digests (lowercase hex, optionally
// prefixed "sha256:"), each mapped to a client id (the user id) and an
// optional role. A fast hash is enough here, unlike for passwords: the keys
// that `scrapegate apikey` makes hold 256 random bits, so a leaked digest
// cannot be inverted by guessing, and a slow hash would only slow every
// request. The digest of a presented key is compared with every stored
// digest in constant time (crypto/subtle), without stopping at a match.
//
// The user it returns has the metadata `auth_method` ("api_key") and `role`
// when the key has one.
type APIKeyProvider struct {
	// Keys listed in the config.
	Keys []APIKey `json:"keys,omitempty"`

	// A file of keys, one per line: `[api_key] <sha256-hex> <client_id>
	// [<role>]` (the `api_key` word is optional, so a line printed by
	// `scrapegate apikey` can be pasted here or into the Caddyfile). Blank
	// lines and lines starting with # are ignored. Placeholders are
	// resolved; an empty result means no file. The file is read when the
	// config is loaded: reload the config after changing it.
	KeysFile string `json:"keys_file,omitempty"`

	// The request header that carries the key. Default: X-API-Key.
	Header string `json:"header,omitempty"`

	// The realm of the WWW-Authenticate challenge. Default: scrapegate.
	Realm string `json:"realm,omitempty"`

	entries []apiKeyEntry
	logger  *zap.Logger
}

// APIKey is one hashed key of APIKeyProvider.
type APIKey struct {
	// The SHA-256 digest of the key, as 64 hex digits, optionally prefixed
	// "sha256:".
	Hash string `json:"hash"`

	// The client id of the key's holder: the user id.
	ClientID string `json:"client_id"`

	// The holder's role ({http.auth.user.role}), if any.
	Role string `json:"role,omitempty"`
}

// apiKeyEntry is a provisioned key.
type apiKeyEntry struct {
	digest   []byte
	clientID string
	role     string
}

// CaddyModule returns the Caddy module information.
func (*APIKeyProvider) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.authentication.providers.scrapegate_api_key",
		New: func() caddy.Module { return new(APIKeyProvider) },
	}
}

// Provision fills in defaults and loads the keys, from the config and the
// keys file.
func (p *APIKeyProvider) Provision(ctx caddy.Context) error {
	p.logger = ctx.Logger()
	if p.Header == "" {
		p.Header = DefaultAPIKeyHeader
	}
	if p.Realm == "" {
		p.Realm = DefaultAuthRealm
	}
	keys := append([]APIKey(nil), p.Keys...)
	if file := caddy.NewReplacer().ReplaceKnown(p.KeysFile, ""); file != "" {
		fromFile, err := readAPIKeysFile(file)
		if err != nil {
			return fmt.Errorf("keys_file: %v", err)
		}
		keys = append(keys, fromFile...)
	}
	seen := make(map[string]bool)
	p.entries = p.entries[:0]
	for i, k := range keys {
		digest, err := parseKeyHash(k.Hash)
		if err != nil {
			return fmt.Errorf("key %d (client %q): %v", i, k.ClientID, err)
		}
		if k.ClientID == "" {
			return fmt.Errorf("key %d: client_id is required", i)
		}
		if seen[string(digest)] {
			return fmt.Errorf("key %d (client %q): the same key is listed twice", i, k.ClientID)
		}
		seen[string(digest)] = true
		p.entries = append(p.entries, apiKeyEntry{digest: digest, clientID: k.ClientID, role: k.Role})
	}
	if len(p.entries) == 0 {
		p.logger.Warn("no API keys configured; every X-API-Key will be refused")
	}
	return nil
}

// Authenticate implements caddyauth.Authenticator: it checks the API key of
// r. A refused key sets the WWW-Authenticate challenge and returns false
// with no error.
func (p *APIKeyProvider) Authenticate(w http.ResponseWriter, r *http.Request) (caddyauth.User, bool, error) {
	user, reason, err := p.verify(r)
	if err != nil {
		return caddyauth.User{}, false, err
	}
	if reason != "" {
		w.Header().Set("WWW-Authenticate", bearerChallenge(p.Realm, reason))
		return caddyauth.User{}, false, nil
	}
	return user, true, nil
}

// realm returns the realm of the provider's challenge.
func (p *APIKeyProvider) realm() string { return p.Realm }

// hasCredential reports whether r has an API key header.
func (p *APIKeyProvider) hasCredential(r *http.Request) bool {
	return len(r.Header.Values(p.Header)) > 0
}

// verify checks the API key of r; see JWTProvider.verify.
func (p *APIKeyProvider) verify(r *http.Request) (caddyauth.User, string, error) {
	vals := r.Header.Values(p.Header)
	switch {
	case len(vals) == 0:
		return caddyauth.User{}, reasonMissing, nil
	case len(vals) > 1:
		return caddyauth.User{}, "more than one " + p.Header + " header", nil
	}
	user, reason := p.check(strings.TrimSpace(vals[0]))
	return user, reason, nil
}

// check looks up a presented key.
func (p *APIKeyProvider) check(key string) (caddyauth.User, string) {
	switch {
	case key == "":
		return caddyauth.User{}, "empty API key"
	case len(key) > maxAPIKeyLen:
		return caddyauth.User{}, "invalid API key"
	}
	sum := sha256.Sum256([]byte(key))
	found := -1
	for i, e := range p.entries {
		if subtle.ConstantTimeCompare(sum[:], e.digest) == 1 {
			found = i
		}
	}
	if found < 0 {
		return caddyauth.User{}, "invalid API key"
	}
	e := p.entries[found]
	user := caddyauth.User{ID: e.clientID, Metadata: map[string]string{"auth_method": "api_key"}}
	if e.role != "" {
		user.Metadata["role"] = e.role
	}
	return user, ""
}

// parseKeyHash decodes a stored key digest.
func parseKeyHash(s string) ([]byte, error) {
	s = strings.TrimPrefix(strings.ToLower(strings.TrimSpace(s)), "sha256:")
	if len(s) != 2*sha256.Size {
		return nil, errors.New("hash must be the SHA-256 of the key as 64 hex digits (see `scrapegate apikey`)")
	}
	d, err := hex.DecodeString(s)
	if err != nil {
		return nil, errors.New("hash is not hex")
	}
	return d, nil
}

// readAPIKeysFile reads a keys file (see APIKeyProvider.KeysFile).
func readAPIKeysFile(name string) ([]APIKey, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	if len(data) > maxAPIKeysFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, maxAPIKeysFile)
	}
	return parseAPIKeys(data, name)
}

// parseAPIKeys parses the lines of a keys file; name is used in errors.
func parseAPIKeys(data []byte, name string) ([]APIKey, error) {
	var keys []APIKey
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if f[0] == "api_key" {
			f = f[1:]
		}
		if len(f) < 2 || len(f) > 3 {
			return nil, fmt.Errorf("%s:%d: want `[api_key] <sha256-hex> <client_id> [<role>]`", name, n)
		}
		if _, err := parseKeyHash(f[0]); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", name, n, err)
		}
		k := APIKey{Hash: f[0], ClientID: f[1]}
		if len(f) == 3 {
			k.Role = f[2]
		}
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	return keys, nil
}

// Interface guards
var (
	_ caddy.Provisioner       = (*APIKeyProvider)(nil)
	_ caddyauth.Authenticator = (*APIKeyProvider)(nil)
	_ credentialVerifier      = (*APIKeyProvider)(nil)
)

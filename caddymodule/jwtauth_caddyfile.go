package caddymodule

import (
	"errors"
	"math"

	"github.com/dustin/go-humanize"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("jwt_auth", parseHandler[JWTAuth])
	// where basic_auth would be: after rate_limit unless the Caddyfile says
	// otherwise, which is why the example Caddyfile orders it explicitly
	// (`order jwt_auth before rate_limit`), so limits key on the client
	httpcaddyfile.RegisterDirectiveOrder("jwt_auth", httpcaddyfile.Before, "basic_auth")
}

// UnmarshalCaddyfile sets up the handler and its providers from Caddyfile
// tokens. Syntax:
//
//	jwt_auth [<matcher>] {
//		# bearer tokens (the scrapegate_jwt provider): at least one key source
//		secret          <secret>                      # HMAC secret, e.g. {env.JWT_SECRET_KEY}
//		algorithm       HS256|HS384|HS512             # of the secret; default HS256
//		public_key      <pem_file> [<algorithm> [<kid>]]
//		jwks_file       <path>
//		jwks_url        <url>
//		jwks_refresh    <duration>                    # default 5m
//		leeway          <duration>                    # default 0
//		issuer          <iss>
//		audience        <aud...>
//		client_id_claim <claim>                       # default client_id
//		role_claim      <claim>                       # default role
//		user_claims     <claim...>
//		max_token_size  <size>                        # default 8KiB
//
//		# API keys (the scrapegate_api_key provider)
//		api_key         <sha256_hex> <client_id> [<role>]
//		api_keys_file   <path>                        # e.g. {env.API_KEYS_FILE}; empty: none
//		api_key_header  <header>                      # default X-API-Key
//
//		realm           <realm>                       # default scrapegate
//	}
//
// public_key, jwks_file, jwks_url, api_key, audience and user_claims may be
// repeated; every other subdirective may appear once. Secrets and paths
// should be given as runtime placeholders ({env.NAME}), which are resolved
// when the config is loaded and so stay out of `caddy adapt` output.
func (h *JWTAuth) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	var jp JWTProvider
	var kp APIKeyProvider
	hasJWT, hasKeys := false, false
	jwtOnly := "" // a JWT option given, for the error when there is no key source
	seen := make(map[string]bool)
	once := func(name string) error {
		if seen[name] {
			return d.Errf("duplicate subdirective: %s", name)
		}
		seen[name] = true
		return nil
	}
	one := func(dst *string) error {
		if !d.AllArgs(dst) {
			return d.ArgErr()
		}
		return nil
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		switch name {
		case "secret", "algorithm", "jwks_refresh", "leeway", "issuer", "client_id_claim",
			"role_claim", "max_token_size", "api_keys_file", "api_key_header", "realm":
			if err := once(name); err != nil {
				return err
			}
		}
		switch name {
		case "secret":
			if err := one(&jp.Secret); err != nil {
				return err
			}
			hasJWT = true
		case "algorithm":
			if err := one(&jp.Algorithm); err != nil {
				return err
			}
			jwtOnly = name
		case "public_key":
			args := d.RemainingArgs()
			if len(args) < 1 || len(args) > 3 {
				return d.ArgErr()
			}
			pk := JWTPublicKey{File: args[0]}
			if len(args) > 1 {
				pk.Algorithm = args[1]
			}
			if len(args) > 2 {
				pk.KID = args[2]
			}
			jp.PublicKeys = append(jp.PublicKeys, pk)
			hasJWT = true
		case "jwks_file", "jwks_url":
			var v string
			if err := one(&v); err != nil {
				return err
			}
			if name == "jwks_file" {
				jp.JWKSFiles = append(jp.JWKSFiles, v)
			} else {
				jp.JWKSURLs = append(jp.JWKSURLs, v)
			}
			hasJWT = true
		case "jwks_refresh", "leeway":
			var v string
			if err := one(&v); err != nil {
				return err
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil {
				return d.Errf("%s: invalid duration %q: %v", name, v, err)
			}
			if name == "leeway" {
				jp.Leeway = caddy.Duration(dur)
			} else {
				jp.JWKSRefresh = caddy.Duration(dur)
			}
			jwtOnly = name
		case "issuer":
			if err := one(&jp.Issuer); err != nil {
				return err
			}
			jwtOnly = name
		case "audience", "user_claims":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			if name == "audience" {
				jp.Audience = append(jp.Audience, args...)
			} else {
				jp.UserClaims = append(jp.UserClaims, args...)
			}
			jwtOnly = name
		case "client_id_claim":
			if err := one(&jp.ClientIDClaim); err != nil {
				return err
			}
			jwtOnly = name
		case "role_claim":
			if err := one(&jp.RoleClaim); err != nil {
				return err
			}
			jwtOnly = name
		case "max_token_size":
			var v string
			if err := one(&v); err != nil {
				return err
			}
			size, err := sizeArg(v)
			if err != nil || size == 0 || size > 1<<20 {
				return d.Errf("max_token_size: invalid size %q (1 byte to 1MiB)", v)
			}
			jp.MaxTokenSize = int(size)
			jwtOnly = name
		case "api_key":
			args := d.RemainingArgs()
			if len(args) < 2 || len(args) > 3 {
				return d.ArgErr()
			}
			if _, err := parseKeyHash(args[0]); err != nil {
				return d.Errf("api_key: %v", err)
			}
			k := APIKey{Hash: args[0], ClientID: args[1]}
			if len(args) == 3 {
				k.Role = args[2]
			}
			kp.Keys = append(kp.Keys, k)
			hasKeys = true
		case "api_keys_file":
			if err := one(&kp.KeysFile); err != nil {
				return err
			}
			hasKeys = true
		case "api_key_header":
			if err := one(&kp.Header); err != nil {
				return err
			}
		case "realm":
			var realm string
			if err := one(&realm); err != nil {
				return err
			}
			jp.Realm, kp.Realm = realm, realm
		default:
			return d.Errf("unrecognized subdirective: %s", name)
		}
	}
	if !hasJWT && jwtOnly != "" {
		return d.Errf("%s is set but no token key is: add secret, public_key, jwks_file or jwks_url", jwtOnly)
	}
	if !hasJWT && !hasKeys {
		return d.Err("jwt_auth needs a credential source: secret, public_key, jwks_file, jwks_url, api_key or api_keys_file")
	}
	h.ProvidersRaw = make(caddy.ModuleMap)
	if hasJWT {
		h.ProvidersRaw["scrapegate_jwt"] = caddyconfig.JSON(jp, nil)
	}
	if hasKeys {
		h.ProvidersRaw["scrapegate_api_key"] = caddyconfig.JSON(kp, nil)
	}
	return nil
}

// sizeArg parses a size with optional units (8KiB, 1MB) or plain bytes.
func sizeArg(s string) (int64, error) {
	n, err := humanize.ParseBytes(s)
	if err != nil {
		return 0, err
	}
	if n > math.MaxInt64 {
		return 0, errors.New("too large")
	}
	return int64(n), nil
}

// Interface guards
var _ caddyfile.Unmarshaler = (*JWTAuth)(nil)

//go:build tools

// Package scrapegate pins, for go mod tidy, the libraries the packages of this
// module are built with before every one of them imports them.
package scrapegate

import (
	_ "github.com/Masterminds/semver/v3"
	_ "github.com/PuerkitoBio/goquery"
	_ "github.com/caddyserver/caddy/v2/caddytest"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/chromedp/chromedp"
	_ "github.com/coder/websocket"
	_ "github.com/fsnotify/fsnotify"
	_ "github.com/getkin/kin-openapi/openapi3"
	_ "github.com/golang-jwt/jwt/v5"
	_ "github.com/google/uuid"
	_ "github.com/invopop/jsonschema"
	_ "github.com/mholt/caddy-ratelimit"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/rabbitmq/amqp091-go"
	_ "github.com/santhosh-tekuri/jsonschema/v6"
	_ "github.com/shirou/gopsutil/v4/process"
	_ "go.uber.org/goleak"
	_ "go.uber.org/zap"
	_ "golang.org/x/text/language"
)

# xcaddy.mk: build a stock Caddy with scrapegate's modules through xcaddy, the
# way any Caddy user adds plugins. Included by the Makefile; `make help` lists
# these targets too.
#
#   make xcaddy-build    # bin/caddy: Caddy v2.11.9 + scrapegate + caddy-ratelimit v0.1.0
#   make xcaddy-check    # ... and check that `caddy list-modules` shows our modules
#
# xcaddy is the version pinned in go.mod (`go tool xcaddy`). It builds in a
# temporary module that requires Caddy and the plugins; this checkout is
# plugged in with `--with github.com/scrapegate/scrapegate=.` (a replace), which
# needs the package at the module root (plugin.go). With GOPROXY ending in
# `|off`, the build uses the module proxy for what the module cache lacks and
# never falls back to fetching repositories directly.

CADDY_VERSION ?= v2.11.9
CADDY_RATELIMIT ?= github.com/mholt/caddy-ratelimit@v0.1.0
XCADDY ?= $(GO) tool xcaddy
XCADDY_GOPROXY ?= https://proxy.golang.org|off
XCADDY_OUT ?= $(BIN)/caddy
# the module IDs the build must list
XCADDY_MODULES ?= scrapegate http.handlers.scrape_rpc http.handlers.jwt_auth http.handlers.ws_status http.handlers.scrape_error http.handlers.scrape_info http.handlers.scrape_health http.handlers.scrape_status http.handlers.scrape_target http.handlers.scrape_in_flight http.handlers.scrape_cors http.handlers.scrape_openapi http.handlers.scrape_docs http.handlers.scrape_dashboard http.handlers.scrape_scripts http.authentication.providers.scrapegate_jwt http.authentication.providers.scrapegate_api_key http.handlers.rate_limit

.PHONY: xcaddy-build xcaddy-check

xcaddy-build: ## build bin/caddy: stock Caddy + our modules + caddy-ratelimit, through xcaddy
	@mkdir -p $(dir $(XCADDY_OUT))
	GOPROXY='$(XCADDY_GOPROXY)' $(XCADDY) build $(CADDY_VERSION) \
		--output $(abspath $(XCADDY_OUT)) \
		--with $(CADDY_RATELIMIT) \
		--with github.com/scrapegate/scrapegate=$(CURDIR)

xcaddy-check: xcaddy-build ## check that the xcaddy build lists our modules (caddy list-modules)
	@mods=$$($(XCADDY_OUT) list-modules); missing=""; \
	for m in $(XCADDY_MODULES); do \
		grep -qx "$$m" <<<"$$mods" || missing="$$missing $$m"; \
	done; \
	if [ -n "$$missing" ]; then echo "xcaddy build lacks modules:$$missing" >&2; exit 1; fi; \
	$(XCADDY_OUT) version; echo "xcaddy build OK: $(XCADDY_MODULES)"

# scrapegate: `make run` starts a gateway and a worker on the local RabbitMQ;
# `make test` runs every test. `make help` lists the rest.
SHELL := /bin/bash
GO ?= go
BIN ?= bin
export CGO_ENABLED ?= 1

.DEFAULT_GOAL := help
.PHONY: help build run test test-unit test-e2e fuzz lint chaos bench deps broker-up clean FORCE

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: $(BIN)/scrapegate $(BIN)/scrapegate-worker ## build the gateway (a Caddy build) and the worker into bin/

$(BIN)/scrapegate: FORCE
	$(GO) build -o $@ ./cmd/scrapegate

$(BIN)/scrapegate-worker: FORCE
	$(GO) build -o $@ ./cmd/scrapegate-worker

run: build broker-up ## start one worker and the gateway with the example Caddyfile; Ctrl-C stops both
	scripts/run.sh

broker-up: ## make sure the local RabbitMQ answers on 127.0.0.1:5672
	scripts/ensure-rabbitmq.sh

deps: broker-up ## install what the tests need and a fresh machine lacks (Chromium)
	scripts/ensure-chromium.sh

test: deps lint test-unit fuzz xcaddy-check ## every test: lint, unit and integration (real RabbitMQ, real Caddy, real Chromium), the short fault suite, short fuzzing, the xcaddy build

test-unit: ## go test -race of every package (the end-to-end package included)
	$(GO) test -race -count=1 -timeout 20m ./...

fuzz: ## each fuzz target for a few seconds beyond its seed corpus
	scripts/fuzz.sh 5s

lint: ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

chaos: build broker-up ## the long fault suite: 256 concurrent calls for 5 minutes
	SCRAPEGATE_CHAOS=long $(GO) test -count=1 -timeout 30m -run TestChaos -v ./e2e

bench: build broker-up ## POST /scrape load at 1, 16, 64, 256 connections (bench/README.md)
	bench/gateway.sh

clean: ## remove build output
	rm -rf $(BIN)

include xcaddy.mk

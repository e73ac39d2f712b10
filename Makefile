# make test installs what a fresh Debian machine lacks (redis-server, the SDK's
# npm packages, Chromium for the browser test), then runs every test.

SHELL := /bin/bash
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
GO ?= go
FUZZTIME ?= 2m
# 0: a free port, read back from the server's log
SMOKE_PORT ?= 0

.PHONY: test run deps deps-redis deps-node deps-chromium check go-test sdk-test smoke fuzz mutants bench clean

test: deps deps-conformance check go-test sdk-test smoke

run:
	$(GO) run .

deps: deps-redis deps-node deps-chromium

deps-redis:
	@command -v redis-server >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server; }

deps-node:
	@command -v node >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq nodejs npm; }
	cd sdk && npm ci --no-audit --no-fund --loglevel=error
	cd testdata/interop && npm ci --no-audit --no-fund --loglevel=error

# The official Engine.IO protocol test suite's packages (mocha, ws,
# node-fetch), for conformance_test.go.
deps-conformance:
	cd testdata/engine.io-protocol/test-suite && npm ci --no-audit --no-fund --loglevel=error

deps-chromium:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }

check:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

go-test:
	$(GO) test -race -count=1 ./...

sdk-test:
	cd sdk && npm run typecheck && npm test && npm run test:integration && npm run test:browser

# The load generator's smoke run against a freshly built server, on a free
# port (the server logs the address it serves on).
smoke:
	@set -e; $(GO) build -o bin/rtm . ; \
	PORT=$(SMOKE_PORT) bin/rtm >bin/smoke-server.log 2>&1 & pid=$$!; \
	trap 'kill $$pid 2>/dev/null; wait $$pid 2>/dev/null' EXIT; \
	port=; for i in $$(seq 100); do \
		port=$$(sed -n 's/.*msg=serving addr=.*:\([0-9][0-9]*\)$$/\1/p' bin/smoke-server.log); \
		[ -n "$$port" ] && break; sleep 0.1; done; \
	[ -n "$$port" ] || { echo "smoke: the server did not start:"; cat bin/smoke-server.log; exit 1; }; \
	$(GO) run ./bench -smoke -target http://127.0.0.1:$$port

# Long fuzzing, by hand: FUZZTIME per target.
fuzz: deps-redis
	$(GO) test -run='^$$' -fuzz='^FuzzPayload$$' -fuzztime=$(FUZZTIME) .
	$(GO) test -run='^$$' -fuzz='^FuzzStateMerge$$' -fuzztime=$(FUZZTIME) .
	$(GO) test -run='^$$' -fuzz='^FuzzPacket$$' -fuzztime=$(FUZZTIME) .
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeSIO$$' -fuzztime=$(FUZZTIME) .
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeEvent$$' -fuzztime=$(FUZZTIME) .
	$(GO) test -run='^$$' -fuzz='^FuzzPayloadV3$$' -fuzztime=$(FUZZTIME) .
	$(GO) test -run='^$$' -fuzz='^FuzzPayloadV4$$' -fuzztime=$(FUZZTIME) .

# Deliberate bugs, by hand: each mutant in scripts/mutants.sh is applied to a
# copy of the tracked tree and must make its tests fail.
mutants: deps-redis
	GO=$(GO) scripts/mutants.sh

# Load runs, by hand; see bench/README.md.
bench:
	$(GO) run ./bench $(BENCHFLAGS)

clean:
	rm -rf bin sdk/dist

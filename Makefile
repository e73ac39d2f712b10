# make test needs Go (see the README) and nothing else: it installs what the
# machine lacks (redis-server, a C compiler for -race, Chromium, with apt;
# Node >= 20.19 and npm from the npm registry when the system's is older),
# skips what is there, then runs every test, the independent suites side by
# side.

SHELL := /bin/bash
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
GO ?= go
FUZZTIME ?= 2m
# 0: a free port, read back from the server's log
SMOKE_PORT ?= 0
# How many parallel Go tests run at once (go test -parallel); empty: go
# test's default, the number of cores. Many tests bound times of a second
# or two, so more than that starves them on a small or busy machine.
GOTEST_PARALLEL ?=
# Chromium for the SDK's browser tests: the first one installed, else the
# one deps-system installs (Debian's package; on Ubuntu, whose chromium is a
# snap, the snap's binary).
CHROMIUM_PATH ?= $(or $(firstword $(wildcard /usr/bin/chromium /usr/bin/chromium-browser /snap/bin/chromium)),$(if $(shell grep -qs '^ID=ubuntu' /etc/os-release && echo y),/snap/bin/chromium,/usr/bin/chromium))
export CHROMIUM_PATH

.PHONY: test run deps deps-system deps-node deps-conformance check go-test sdk-test sdk-unit sdk-integration sdk-browser smoke build fuzz mutants bench clean

# Node for the SDK and the interop test: the one on PATH when it is recent
# enough, else the one scripts/nodeenv keeps in .tools/ (fetched once).
ifneq ($(filter test deps deps-node deps-conformance go-test sdk-test sdk-unit sdk-integration sdk-browser,$(or $(MAKECMDGOALS),test)),)
NODE_BIN := $(shell $(GO) run ./scripts/nodeenv -dir .tools || echo nodeenv-failed)
ifeq ($(NODE_BIN),nodeenv-failed)
$(error could not provide Node >= 20.19: see the nodeenv message above)
endif
export PATH := $(if $(NODE_BIN),$(NODE_BIN):)$(PATH)
# Node's official builds trust only their own CA list; the machine's bundle
# too (a proxy's CA that apt and go already trust), as Debian's node does.
SYSTEM_CA := $(wildcard /etc/ssl/certs/ca-certificates.crt)
ifneq ($(and $(NODE_BIN),$(SYSTEM_CA)),)
export NODE_EXTRA_CA_CERTS ?= $(SYSTEM_CA)
endif
endif

test: deps build
	@$(MAKE) --no-print-directory -j4 --output-sync=target check go-test sdk-test smoke

run:
	$(GO) run .

deps: deps-system deps-node

# One apt-get for whatever is missing; nothing when all is there.
deps-system:
	@missing=; \
	{ command -v redis-server && command -v redis-cli; } >/dev/null || missing="$$missing redis-server"; \
	command -v "$$($(GO) env CC)" >/dev/null || missing="$$missing gcc libc6-dev"; \
	[ -x "$(CHROMIUM_PATH)" ] || missing="$$missing $(if $(findstring /snap/,$(CHROMIUM_PATH)),chromium-browser,chromium)"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# npm ci only when a lock file is newer than its last install: the SDK's,
# the interop test's, and the official Engine.IO and Socket.IO protocol test
# suites' (mocha, ws, node-fetch, chai, for conformance_test.go).
deps-node: sdk/node_modules/.installed testdata/interop/node_modules/.installed \
	testdata/engine.io-protocol/test-suite/node_modules/.installed \
	testdata/socket.io-protocol/test-suite/node_modules/.installed

# Just the conformance suites' packages.
deps-conformance: testdata/engine.io-protocol/test-suite/node_modules/.installed \
	testdata/socket.io-protocol/test-suite/node_modules/.installed

%/node_modules/.installed: %/package-lock.json
	cd $* && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed

check:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

go-test:
	$(GO) test -race -count=1 $(if $(GOTEST_PARALLEL),-parallel=$(GOTEST_PARALLEL)) ./...

# The server binary of the smoke run; built once, before the suites start,
# so that the SDK suites' own go build finds it in Go's build cache.
build:
	$(GO) build -o bin/rtm .

sdk-test: sdk-unit
	@$(MAKE) --no-print-directory -j2 --output-sync=target sdk-integration sdk-browser

sdk-unit:
	cd sdk && npm run typecheck && npm test

sdk-integration:
	cd sdk && npm run test:integration

sdk-browser:
	cd sdk && npm run test:browser

# The load generator's smoke run against the server, on a free port (the
# server logs the address it serves on).
smoke: build
	@set -e; \
	PORT=$(SMOKE_PORT) bin/rtm >bin/smoke-server.log 2>&1 & pid=$$!; \
	trap 'kill $$pid 2>/dev/null; wait $$pid 2>/dev/null' EXIT; \
	port=; for i in $$(seq 100); do \
		port=$$(sed -n 's/.*msg=serving addr=.*:\([0-9][0-9]*\)$$/\1/p' bin/smoke-server.log); \
		[ -n "$$port" ] && break; sleep 0.1; done; \
	[ -n "$$port" ] || { echo "smoke: the server did not start:"; cat bin/smoke-server.log; exit 1; }; \
	$(GO) run ./bench -smoke -target http://127.0.0.1:$$port

# Long fuzzing, by hand: FUZZTIME per target.
fuzz: deps-system
	$(GO) test -run='^$$' -fuzz='^FuzzPayload$$' -fuzztime=$(FUZZTIME) .
	$(GO) test -run='^$$' -fuzz='^FuzzStateMerge$$' -fuzztime=$(FUZZTIME) .
	$(GO) test -run='^$$' -fuzz='^FuzzPacket$$' -fuzztime=$(FUZZTIME) .
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeSIO$$' -fuzztime=$(FUZZTIME) .
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeEvent$$' -fuzztime=$(FUZZTIME) .
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeArgs$$' -fuzztime=$(FUZZTIME) .
	$(GO) test -run='^$$' -fuzz='^FuzzPayloadV3$$' -fuzztime=$(FUZZTIME) .
	$(GO) test -run='^$$' -fuzz='^FuzzPayloadV3Binary$$' -fuzztime=$(FUZZTIME) .
	$(GO) test -run='^$$' -fuzz='^FuzzPayloadV4$$' -fuzztime=$(FUZZTIME) .

# Deliberate bugs, by hand: each mutant in scripts/mutants.sh is applied to a
# copy of the tracked tree and must make its tests fail.
mutants: deps-system
	GO=$(GO) scripts/mutants.sh

# Load runs, by hand; see bench/README.md.
bench:
	$(GO) run ./bench $(BENCHFLAGS)

clean:
	rm -rf bin sdk/dist .tools

# TIP — the two commands a newcomer needs:
#   make demo   bring up the local stack and run TIP's main job
#   make test   run every test (unit, workflow and integration on real services)
SHELL := /bin/bash
.DEFAULT_GOAL := help

TIP_TOOLS_DIR ?= $(CURDIR)/.tools/bin
TIP_STATE_DIR ?= $(CURDIR)/state
export TIP_TOOLS_DIR TIP_STATE_DIR

VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
TIP := bin/tip
GO_TEST_FLAGS ?=

.PHONY: help build tools tools-prod up down status wipe demo up-prod down-prod demo-prod doctor test test-deploy test-faults test-unit fuzz bench bench-flux lint fmt workflowcheck clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

build: ## build bin/tip
	go build -ldflags "-X main.version=$(VERSION)" -o $(TIP) ./cmd/tip

tools: ## build the pinned Temporal CLI, MinIO and workflowcheck into the tools folder; install PostgreSQL 15 if missing
	deploy/local/tools.sh

# TIP's defaults are the real Internet's; the lab's settings are one file, which
# the targets that run the lab hand to every tip they start.
LAB_CONFIG := $(CURDIR)/config/lab.tip.yaml
up demo up-prod demo-prod doctor: export TIP_CONFIG = $(LAB_CONFIG)

up: tools build ## start the local stack (Temporal + Web UI, PostgreSQL, MinIO) and set TIP up in it
	$(TIP) dev up

down: build ## stop what the local stack started; data stays
	$(TIP) dev down

status: build ## show the local stack's services
	$(TIP) dev status

wipe: down ## stop the local stack and delete its data
	$(TIP) dev wipe

demo: tools build ## from the local stack, the lab, its spamtrap agent and a worker, run TIP's whole loop and summarise it (a few minutes)
	$(TIP) dev up --lab --worker --dns --api
	$(TIP) doctor
	$(TIP) core start
	@echo
	$(TIP) dev demo
	@echo "bin/tip on the lab: export TIP_CONFIG=$(LAB_CONFIG)"

# The production-like stack: the Temporal server on PostgreSQL (built from
# go.temporal.io/server), the standalone Web UI, MinIO and two TIP workers, on the
# local stack's addresses, its state in state/prod. Run one stack at a time. Its
# spam catalog is a copy of config/spam-lab.yaml in its state folder, so the
# paths in it (the agent's token and certificate, the lab's CA) are its own.
PROD_STATE := $(TIP_STATE_DIR)/prod
PROD := --prod --state $(PROD_STATE)
PROD_ENV := TIP_SPAM_CATALOG=$(PROD_STATE)/spam-lab.yaml

tools-prod: tools ## build the Temporal server, its SQL schema tool and the standalone Web UI into the tools folder (once, ~10 min cold)
	deploy/local/tools.sh prod

$(PROD_STATE)/spam-lab.yaml:
	@mkdir -p $(PROD_STATE)
	sed 's#\.\./state/##' config/spam-lab.yaml > $@

up-prod: tools-prod build $(PROD_STATE)/spam-lab.yaml ## start the production-like stack (Temporal on PostgreSQL, Web UI, MinIO, two workers) and set TIP up in it
	$(PROD_ENV) $(TIP) dev up $(PROD) --worker --workers 2

down-prod: build ## stop the production-like stack; data stays
	$(TIP) dev down $(PROD)

demo-prod: tools-prod build $(PROD_STATE)/spam-lab.yaml ## make demo on the production-like stack, with two workers
	$(PROD_ENV) $(TIP) dev up $(PROD) --lab --worker --workers 2 --dns --api
	$(PROD_ENV) $(TIP) doctor
	$(PROD_ENV) $(TIP) core start
	@echo
	$(PROD_ENV) $(TIP) dev demo $(PROD)
	@echo "bin/tip on the lab: export TIP_CONFIG=$(LAB_CONFIG) $(PROD_ENV)"

doctor: build ## check every service
	$(TIP) doctor

test: tools tools-prod build lint ## run every test: unit, workflow, and integration against real services; then test-deploy
	go test $(GO_TEST_FLAGS) -count=1 -timeout 20m ./...
	$(MAKE) --no-print-directory test-deploy

# deploy/validate is a Go module of its own (Helm, Kubernetes and compose-go stay
# out of TIP's go.mod); its first build takes minutes, later runs seconds.
test-deploy: ## check the container deployment files offline: generated files current, compose.yaml and the Helm chart loaded, rendered and checked against devstack
	go test -count=1 ./deploy/gen/
	cd deploy/validate && go vet ./... && go test $(GO_TEST_FLAGS) -count=1 -timeout 15m ./...

test-faults: tools tools-prod build ## the fault tests (workers killed, Temporal and PostgreSQL restarted or down, broken feeds) again on the production-like stack
	TIP_TEST_STACK=prod go test $(GO_TEST_FLAGS) -count=1 -timeout 20m ./worker/reliability/

test-unit: ## fast tests only (no services)
	go test -short -count=1 ./...

# Every fuzz target for FUZZTIME each (go test runs their seed corpora and
# testdata/fuzz in make test already); a crasher is written to the package's
# testdata/fuzz/<target>/ by go test, where it becomes a seed to commit.
FUZZTIME ?= 1m
fuzz: ## run every fuzz target for FUZZTIME (default 1m) each; FUZZ=regexp picks targets
	@set -e; re='$(FUZZ)'; grep -rl --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]*\(' . | sort | while read -r f; do \
	  pkg=./$$(dirname "$${f#./}"); \
	  for t in $$(grep -oE '^func Fuzz[A-Za-z0-9_]*' "$$f" | cut -d' ' -f2); do \
	    [[ -n $$re && ! $$t =~ $$re ]] && continue; \
	    echo "fuzz: $$pkg $$t for $(FUZZTIME)"; \
	    go test -run='^$$' -fuzz="^$$t\$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=10s "$$pkg"; \
	  done; \
	done

bench: tools ## measure parse, load and refresh against their targets (minutes); results in state/bench/
	@mkdir -p "$(TIP_STATE_DIR)/bench"
	@out="$(TIP_STATE_DIR)/bench/results-$$(date -u +%Y%m%dT%H%M%SZ).txt"; \
	  TIP_BENCH_RESULTS="$$out" TIP_BENCH_VERSION="$(VERSION)" \
	    go test -tags bench -count=1 -timeout 40m -run '^TestBench$$' -v ./bench/ && \
	  cp "$$out" "$(TIP_STATE_DIR)/bench/latest.txt" && echo && cat "$$out"

bench-flux: tools tools-prod ## monitor 100,000 lab flux domains at a 5-minute cadence on the production-like stack (about 40 min; TIP_BENCH_FLUX_N=10000,30000 for others); results in state/bench/
	@mkdir -p "$(TIP_STATE_DIR)/bench"
	@out="$(TIP_STATE_DIR)/bench/flux-$$(date -u +%Y%m%dT%H%M%SZ).txt"; \
	  TIP_TEST_STACK=$${TIP_TEST_STACK:-prod} TIP_BENCH_RESULTS="$$out" TIP_BENCH_VERSION="$(VERSION)" \
	    go test -tags bench -count=1 -timeout 120m -run '^TestFluxScale$$' -v ./bench/ && \
	  cp "$$out" "$(TIP_STATE_DIR)/bench/flux-latest.txt" && echo && cat "$$out"

lint: workflowcheck ## gofmt, go vet and workflowcheck must be clean
	@out=$$(gofmt -l .); \
	  if [[ -n $$out ]]; then echo "gofmt would change: $$out"; exit 1; fi
	go vet ./...

workflowcheck: tools
	$(TIP_TOOLS_DIR)/workflowcheck ./workflows/...

fmt: ## format the code
	gofmt -w .

clean: ## remove built binaries (not the tools, not the state)
	rm -rf bin

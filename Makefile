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

.PHONY: help build tools up down status wipe demo doctor test test-unit bench bench-flux lint fmt workflowcheck clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

build: ## build bin/tip
	go build -ldflags "-X main.version=$(VERSION)" -o $(TIP) ./cmd/tip

tools: ## build the pinned Temporal CLI, MinIO and workflowcheck into the tools folder; install PostgreSQL 15 if missing
	deploy/local/tools.sh

up: tools build ## start the local stack (Temporal + Web UI, PostgreSQL, MinIO) and set TIP up in it
	$(TIP) dev up

down: build ## stop what the local stack started; data stays
	$(TIP) dev down

status: build ## show the local stack's services
	$(TIP) dev status

wipe: down ## stop the local stack and delete its data
	$(TIP) dev wipe

demo: tools build ## from the local stack, the lab, its spamtrap agent and a worker, run TIP's whole loop and summarise it (a few minutes)
	$(TIP) dev up --lab --worker
	$(TIP) doctor
	$(TIP) core start
	@echo
	$(TIP) dev demo

doctor: build ## check every service
	$(TIP) doctor

test: tools build lint ## run every test: unit, workflow, and integration against real services
	go test $(GO_TEST_FLAGS) -count=1 -timeout 20m ./...

test-unit: ## fast tests only (no services)
	go test -short -count=1 ./...

bench: tools ## measure parse, load and refresh against their targets (minutes); results in state/bench/
	@mkdir -p "$(TIP_STATE_DIR)/bench"
	@out="$(TIP_STATE_DIR)/bench/results-$$(date -u +%Y%m%dT%H%M%SZ).txt"; \
	  TIP_BENCH_RESULTS="$$out" TIP_BENCH_VERSION="$(VERSION)" \
	    go test -tags bench -count=1 -timeout 40m -run '^TestBench$$' -v ./bench/ && \
	  cp "$$out" "$(TIP_STATE_DIR)/bench/latest.txt" && echo && cat "$$out"

bench-flux: tools ## monitor 10,000 lab flux domains at a 5-minute cadence on a test stack (about 20 min; TIP_BENCH_FLUX_N=10000,20000 for more); results in state/bench/
	@mkdir -p "$(TIP_STATE_DIR)/bench"
	@out="$(TIP_STATE_DIR)/bench/flux-$$(date -u +%Y%m%dT%H%M%SZ).txt"; \
	  TIP_BENCH_RESULTS="$$out" TIP_BENCH_VERSION="$(VERSION)" \
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

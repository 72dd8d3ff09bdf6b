# biomatch — the two commands are `make run` and `make test`.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
ENV := source .data/env

.PHONY: run test services services-down build migrate vet fuzz bench

## run: start PostgreSQL+pgvector and Redis (installing them if missing), migrate,
## print a dev API key, and serve the API with the worker on 127.0.0.1:8000.
run: services build
	@$(ENV) && ./biomatch migrate
	@$(ENV) && echo "dev API key (shown once):" && ./biomatch apikey create --customer dev | tail -1
	@$(ENV) && exec ./biomatch serve --with-worker

## test: vet, then every test (race detector on) against real PostgreSQL and Redis,
## then each fuzz target for a short while.
test: services
	@$(ENV) && go vet ./...
	@$(ENV) && go test -race -count=1 -timeout 20m ./...
	@$(MAKE) --no-print-directory fuzz

FUZZTIME ?= 10s
fuzz:
	@$(ENV) && go test ./crypto -run '^$$' -fuzz '^FuzzDecrypt$$' -fuzztime $(FUZZTIME)
	@$(ENV) && go test ./engine -run '^$$' -fuzz '^FuzzNewEmbeddings$$' -fuzztime $(FUZZTIME)

services:
	@bash scripts/services.sh up

services-down:
	@bash scripts/services.sh down

build:
	@go build -o biomatch ./cmd/biomatch

migrate: services build
	@$(ENV) && ./biomatch migrate

bench:
	@$(ENV) && go test ./bench -run '^$$' -bench . -benchmem

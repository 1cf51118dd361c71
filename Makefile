# The two commands that matter: `make demo` (bring everything up, run the demo)
# and `make test` (every test). The rest are the steps they are made of.
SHELL := /bin/bash
.DEFAULT_GOAL := help
SCRIPTS := infra/scripts

.PHONY: help infra up down logs status demo watch test-hot-reload test test-rust test-demo test-swagger test-schemathesis chaos test-observability test-observability-ui test-deploy test-broker test-events test-asyncapi events test-bench bench soak latency clean-test-dbs fmt lint test-docs screenshots

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

infra: ## Build the broker, trace viewer and services side by side (the first two once per machine), start the broker, create the databases
	@$(SCRIPTS)/apt-install.sh mold libssl-dev pkg-config
	@OBSERVABILITY=$(OBSERVABILITY) $(SCRIPTS)/prepare.sh
	@$(SCRIPTS)/broker.sh start
	@$(SCRIPTS)/databases.sh

# Prometheus and the trace viewer come up with the platform; `make up OBSERVABILITY=0` leaves them out.
OBSERVABILITY ?= 1

up: infra ## Build and start the four services (with Prometheus and the trace viewer); wait until they are ready
	@if [ "$(OBSERVABILITY)" != 0 ]; then $(SCRIPTS)/traces.sh start && $(SCRIPTS)/prometheus.sh start; fi
	@$(SCRIPTS)/services.sh start

down: ## Stop the services, Prometheus, the trace viewer and the broker started by `make up`
	@$(SCRIPTS)/services.sh stop
	@$(SCRIPTS)/prometheus.sh stop
	@$(SCRIPTS)/traces.sh stop
	@$(SCRIPTS)/broker.sh stop

watch: infra ## Run the services; on a change rebuild and restart only those affected, keeping their sockets
	@bash -c 'source infra/scripts/common.sh && exec infra/watch/watch.py'

test-hot-reload: infra ## Edit a handler under make watch; report seconds to new behaviour and failed requests
	@PLATFORM_SERVICES=0 $(SCRIPTS)/with-platform.sh bash -c 'source infra/scripts/common.sh && exec infra/watch/test_hot_reload.py'

# EVENTS_ARGS: --from-beginning, --json, --payload-chars N, or base topic names to follow only those.
events: infra ## Follow every topic and its dead-letter topic live: time, topic, key, type, event id, trace id, request id, payload
	@source $(SCRIPTS)/common.sh && cargo run --quiet -p event-tools --bin platform-events -- $(EVENTS_ARGS)

logs: ## Follow the services' logs
	@$(SCRIPTS)/services.sh logs

status: ## Show what is running
	@$(SCRIPTS)/broker.sh status || true
	@$(SCRIPTS)/prometheus.sh status || true
	@$(SCRIPTS)/traces.sh status || true
	@$(SCRIPTS)/services.sh status

demo: up ## Bring everything up and run the demo flow
	@./demo-quick.sh

test: infra ## Run every test: unit, integration and end to end on real PostgreSQL and Kafka, faults, the demo, observability and deployment checks
	@$(MAKE) --no-print-directory test-rust
	@$(MAKE) --no-print-directory test-broker
	@$(MAKE) --no-print-directory chaos
	@$(MAKE) --no-print-directory test-demo
	@$(MAKE) --no-print-directory test-events
	@$(MAKE) --no-print-directory test-asyncapi
	@$(MAKE) --no-print-directory test-swagger
	@$(MAKE) --no-print-directory test-schemathesis
	@$(MAKE) --no-print-directory test-observability
	@$(MAKE) --no-print-directory test-observability-ui
	@$(MAKE) --no-print-directory test-deploy
	@$(MAKE) --no-print-directory test-docs
	@$(MAKE) --no-print-directory test-hot-reload
	@$(MAKE) --no-print-directory test-bench
	@$(MAKE) --no-print-directory clean-test-dbs

# The Rust suite gets a broker of its own with empty storage, on port 19092; it signs in
# as the operator (common.sh exports the credentials).
test-rust: infra
	@cargo build --quiet --bins
	@$(SCRIPTS)/broker.sh start-fresh broker-test 19092
	@source $(SCRIPTS)/common.sh; status=0; if cargo nextest --version >/dev/null 2>&1; then \
		TEST_KAFKA_BROKERS=127.0.0.1:19092 cargo nextest run --workspace --no-fail-fast || status=$$?; \
	else \
		TEST_KAFKA_BROKERS=127.0.0.1:19092 cargo test --workspace --no-fail-fast || status=$$?; \
	fi; $(SCRIPTS)/broker.sh stop-fresh broker-test; exit $$status

test-demo: infra ## The demo script end to end against the native processes
	@$(SCRIPTS)/with-platform.sh ./demo-quick.sh

test-events: infra ## `make events` prints a sign-up's three messages within 2 s, with one trace id
	@cargo build --quiet -p event-tools --bin platform-events
	@$(SCRIPTS)/with-platform.sh infra/tests/events/run.py

test-asyncapi: infra ## The served AsyncAPI document passes @asyncapi/parser; a sign-up's real messages match its schemas and headers
	@cargo build --quiet -p event-tools --bin platform-events
	@$(SCRIPTS)/with-platform.sh infra/tests/asyncapi/run.sh

test-schemathesis: infra ## schemathesis (PyPI, every check) against the served OpenAPI document, as a user and as an admin
	@AUTH_RATE_LIMIT_PER_MINUTE=$${AUTH_RATE_LIMIT_PER_MINUTE:-600} $(SCRIPTS)/with-platform.sh infra/tests/schemathesis/run.sh

test-swagger: infra ## Swagger UI in headless Chromium: authorize with a token, execute a request, screenshot
	@$(SCRIPTS)/with-platform.sh infra/tests/swagger/run.sh

chaos: infra ## Fault tests: broker outage, SIGKILL, database outage, poison messages, scale-out (own broker each)
	@cargo build --quiet --bins
	@cargo test --quiet -p system-tests --test faults -- --ignored --test-threads 1 --nocapture

test-observability: infra ## Prometheus rules and Grafana dashboards: promtool, then every PromQL expression against the live platform
	@$(SCRIPTS)/with-platform.sh infra/tests/observability/run-live.sh

test-observability-ui: infra ## After the demo: its links answer; the trace, the settled-events graph and the alerts in headless Chromium
	@infra/tests/observability-ui/run.sh

test-deploy: ## Dockerfile, compose files and Kubernetes manifests, validated offline
	@infra/tests/deploy/check.sh

test-docs: ## README and docs/: links, make targets, paths, ports and settings exist; settings table and metrics catalogue match the code
	@python3 infra/tests/docs/check.py

# Not part of `make test`: the images are committed, not regenerated in CI.
screenshots: infra ## Swagger UI, a sign-up's trace and a Prometheus graph, from the headless-Chromium tests, into docs/images/
	@mkdir -p docs/images
	@SCREENSHOT_DIR=$(CURDIR)/docs/images $(SCRIPTS)/with-platform.sh infra/tests/swagger/run.sh
	@SCREENSHOT_DIR=$(CURDIR)/docs/images infra/tests/observability-ui/run.sh

test-broker: ## The broker scripts: Kafka health check, repair of a wedged broker, bounded store (private ports)
	@infra/tests/broker/run.sh

bench: infra ## Release build, native stack, bench/report.md and bench/results.json (about 5 minutes)
	@bench/bench.sh

soak: ## SOAK_MINUTES (10) of mixed load at about half capacity on its own ports, databases and broker; Soak section of bench/report.md
	@bench/soak.sh

test-bench: infra ## A one-second smoke run of every bench step on the debug build (judges no timings)
	@BENCH_MODE=smoke bench/bench.sh

latency: infra ## POST → settled order over 20 users (payment delay 0)
	@source $(SCRIPTS)/common.sh && cargo test -p system-tests --test api chain_latency -- --ignored --nocapture

clean-test-dbs: ## Drop databases left by tests
	@psql "$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432}/postgres" -Atqc \
		"SELECT datname FROM pg_database WHERE datname LIKE 'test\_%'" | \
		while read -r db; do psql "$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432}/postgres" -qc "DROP DATABASE IF EXISTS \"$$db\" WITH (FORCE)"; done

fmt: ## Format the code
	@cargo fmt --all

lint: ## Formatting, clippy and the static observability checks
	@cargo fmt --all -- --check
	@cargo clippy --workspace --all-targets -- -D warnings
	@OBS_STATIC_ONLY=1 infra/tests/observability/check.sh

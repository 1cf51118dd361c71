#!/usr/bin/env bash
# Proves the Prometheus and Grafana configuration (infra/prometheus, infra/grafana)
# against the running platform:
#
#   1. promtool: both Prometheus configs, every rules file, the rule unit tests;
#      static consistency of configs, datasources and dashboards
#   2. a throw-away Prometheus (own port, own data directory, removed at exit)
#      scraping the services that run natively, with the rules loaded
#   3. every PromQL expression of every dashboard panel, datasource and rule
#      evaluated against it: one that returns nothing fails the check
#
# The platform must be running with some traffic behind it:
#   make up && ./demo-quick.sh && infra/tests/observability/check.sh
#
# How each kind of expression is checked (alerts by the left-hand sides of their
# comparisons, Grafana variables substituted …) is explained at the top of
# promql_check.py.
#
#   OBS_PROMETHEUS_PORT      first port to try for the throw-away Prometheus (19090)
#   OBS_TIMEOUT_SECONDS      how long to wait for targets, scrapes and rules (60)
#   OBS_ALLOW_EMPTY          regex of metric names: expressions empty only because
#                            these are not served yet warn instead of failing
#   OBS_VERBOSE=1            also list the panels empty for a single service
#   OBS_KEEP=1               keep Prometheus running and its directory (prints where)
#   OBS_STATIC_ONLY=1        stop after step 1 (no running platform needed)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
PROM_DIR="$ROOT/infra/prometheus"
GRAFANA_DIR="$ROOT/infra/grafana"
# The scrape jobs: exactly the services' names (infra/scripts/common.sh SERVICES).
JOBS=(api-gateway user-service order-service payment-service)
PORT="${OBS_PROMETHEUS_PORT:-19090}"
TIMEOUT="${OBS_TIMEOUT_SECONDS:-60}"

say() { printf '\033[1m==>\033[0m %s\n' "$*"; }
die() { printf '\033[31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- tools
# Debian's prometheus package, through the script `make up` uses too (once per machine,
# without letting the package start a daemon of its own).
command -v promtool >/dev/null && command -v prometheus >/dev/null ||
  "$ROOT/infra/scripts/apt-install.sh" prometheus ||
  die "promtool/prometheus are missing; install Debian's prometheus package (as root: apt-get install prometheus)"
command -v python3 >/dev/null || die "python3 is required"
command -v curl >/dev/null || die "curl is required"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/observability-check.XXXXXX")"
PROM_PID=""
cleanup() {
  if [ -n "${OBS_KEEP:-}" ] && [ -n "$PROM_PID" ]; then
    say "Prometheus kept running (pid $PROM_PID) at http://127.0.0.1:$PORT, data in $WORK"
    return
  fi
  if [ -n "$PROM_PID" ] && kill -0 "$PROM_PID" 2>/dev/null; then
    kill -TERM "$PROM_PID" 2>/dev/null || true
    wait "$PROM_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# YAML → JSON, so that python3 needs nothing beyond its standard library here.
# PyYAML if importable, else yq 3.x (a jq wrapper: `yq . f.yml` prints JSON),
# else PyYAML installed with pip.
if python3 -c 'import yaml' 2>/dev/null; then
  yaml_to_json() { python3 -c 'import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)' "$1"; }
elif command -v yq >/dev/null && yq . <<<'a: 1' 2>/dev/null | grep -q '"a"'; then
  yaml_to_json() { yq . "$1"; }
else
  say "Installing PyYAML to read YAML"
  python3 -m pip install --quiet pyyaml || die "cannot install PyYAML (pip install pyyaml)"
  yaml_to_json() { python3 -c 'import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)' "$1"; }
fi

CONVERTED="$WORK/converted"
mkdir -p "$CONVERTED/rules" "$CONVERTED/dashboards"
yaml_to_json "$PROM_DIR/prometheus.yml" >"$CONVERTED/prometheus.json"
yaml_to_json "$PROM_DIR/prometheus.docker.yml" >"$CONVERTED/prometheus.docker.json"
yaml_to_json "$GRAFANA_DIR/provisioning/datasources/datasources.yml" >"$CONVERTED/datasources.json"
yaml_to_json "$GRAFANA_DIR/provisioning/dashboards/dashboards.yml" >"$CONVERTED/dashboards-provider.json"
shopt -s nullglob
RULE_FILES=("$PROM_DIR"/rules/*.yml)
TEST_FILES=("$PROM_DIR"/tests/*.yml)
DASHBOARDS=("$GRAFANA_DIR"/dashboards/*.json)
[ ${#RULE_FILES[@]} -gt 0 ] || die "no rules in $PROM_DIR/rules"
[ ${#TEST_FILES[@]} -gt 0 ] || die "no rule tests in $PROM_DIR/tests"
[ ${#DASHBOARDS[@]} -gt 0 ] || die "no dashboards in $GRAFANA_DIR/dashboards"
for f in "${RULE_FILES[@]}"; do yaml_to_json "$f" >"$CONVERTED/rules/$(basename "$f" .yml).json"; done
for f in "${DASHBOARDS[@]}"; do
  python3 -m json.tool "$f" >"$CONVERTED/dashboards/$(basename "$f")" || die "$f is not valid JSON"
done

# ---------------------------------------------------------------- 1. static checks
say "promtool check config"
promtool check config "$PROM_DIR/prometheus.yml" "$PROM_DIR/prometheus.docker.yml"
say "promtool check rules"
promtool check rules "${RULE_FILES[@]}"
say "promtool test rules"
promtool test rules "${TEST_FILES[@]}"
say "Consistency of configs, datasources and dashboards"
python3 "$HERE/promql_check.py" selftest
python3 "$HERE/promql_check.py" static "$CONVERTED" "${JOBS[@]}"
if [ -n "${OBS_STATIC_ONLY:-}" ]; then
  say "Static checks passed (OBS_STATIC_ONLY: expressions not evaluated)"
  exit 0
fi

# ---------------------------------------------------------------- 2. a throw-away Prometheus
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for _ in $(seq 1 50); do
  port_free "$PORT" && break
  PORT=$((PORT + 1))
done
port_free "$PORT" || die "no free port from ${OBS_PROMETHEUS_PORT:-19090} on"
URL="http://127.0.0.1:$PORT"

say "Starting Prometheus on $URL (data in $WORK/data)"
# The rules load through rule_files in prometheus.yml (paths relative to that file)
# and are evaluated every evaluation_interval: no extra flag is needed for that.
prometheus \
  --config.file="$PROM_DIR/prometheus.yml" \
  --storage.tsdb.path="$WORK/data" \
  --storage.tsdb.retention.time=1h \
  --web.listen-address="127.0.0.1:$PORT" \
  --log.level=warn >"$WORK/prometheus.log" 2>&1 &
PROM_PID=$!

deadline=$((SECONDS + TIMEOUT))
until curl -fsS "$URL/-/ready" >/dev/null 2>&1; do
  kill -0 "$PROM_PID" 2>/dev/null || { cat "$WORK/prometheus.log" >&2; die "Prometheus exited"; }
  [ "$SECONDS" -lt "$deadline" ] || { cat "$WORK/prometheus.log" >&2; die "Prometheus not ready after ${TIMEOUT}s"; }
  sleep 0.2
done

say "Waiting for the targets, two scrapes and a rule evaluation"
python3 "$HERE/promql_check.py" wait "$URL" "$TIMEOUT" "${JOBS[@]}" ||
  die "the platform is not scrapeable: start it with 'make up' (and run ./demo-quick.sh for traffic)"

# ---------------------------------------------------------------- 3. every expression
say "Evaluating every dashboard, datasource and rule expression"
python3 "$HERE/promql_check.py" evaluate "$URL" "$CONVERTED" "${JOBS[@]}"
say "Observability configuration checked (summary above)"

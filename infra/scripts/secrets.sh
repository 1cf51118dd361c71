#!/usr/bin/env bash
#! Development secrets of this machine: generated at random on first use, kept
#! outside the work tree with owner-only permissions, reused afterwards.
#!
#!   infra/scripts/secrets.sh admin-password   prints the first admin's password
#!   infra/scripts/secrets.sh path             prints where the secrets live
#!
#! Sourced by common.sh, so every script (services, demo, tests, bench) exports
#! SERVICE_API_KEY, JWT_SECRET and ADMIN_PASSWORD from the same file. No constant
#! that anyone can read in this repository opens the running platform.
#!
#! The broker's principals have a password each (KAFKA_PASSWORD_<PRINCIPAL>), read with
#! `kafka_password <principal>` by whoever starts that principal: broker.sh gives them
#! all to the broker, services.sh each service its own. Scripts and tools sign in as
#! platform-operator (KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD, exported here).
set -euo pipefail

secrets_file() {
  local state="${PLATFORM_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/rust-event-platform}"
  printf '%s/secrets.env' "$state"
}

# random_text <bytes>: URL-safe random text.
random_text() { head -c "$1" /dev/urandom | base64 | tr -d '\n=' | tr '+/' '-_'; }

# The broker's principals: one per service that speaks Kafka, and the operators' tools.
KAFKA_PRINCIPALS=(user-service order-service payment-service platform-operator)

# kafka_password_variable <principal>: KAFKA_PASSWORD_USER_SERVICE for user-service.
kafka_password_variable() { local name=${1//-/_}; printf 'KAFKA_PASSWORD_%s' "${name^^}"; }

# Writes the file on first use, and adds any secret a newer version of the platform needs.
ensure_secrets() {
  local file principal variable; file=$(secrets_file)
  mkdir -p "$(dirname "$file")"
  (
    umask 077
    if [ ! -s "$file" ]; then
      # The admin password must meet the sign-up rules: upper, lower, digit and a special character.
      {
        echo "# Development secrets of this machine, generated $(date -u +%FT%TZ). Keep private."
        echo "SERVICE_API_KEY=$(random_text 36)"
        echo "JWT_SECRET=$(random_text 48)"
        echo "ADMIN_PASSWORD=Dev-$(random_text 18)-9a!"
      } >"$file.tmp"
      mv "$file.tmp" "$file"
    fi
    for principal in "${KAFKA_PRINCIPALS[@]}"; do
      variable=$(kafka_password_variable "$principal")
      grep -q "^$variable=" "$file" || echo "$variable=$(random_text 24)" >>"$file"
    done
  )
}

# kafka_password <principal>: that principal's password on this machine's brokers.
kafka_password() {
  grep "^$(kafka_password_variable "$1")=" "$(secrets_file)" | cut -d= -f2-
}

# Exports the secrets into the caller's environment, unless the caller already set them.
load_secrets() {
  ensure_secrets
  local file name value
  file=$(secrets_file)
  while IFS='=' read -r name value; do
    case "$name" in
      SERVICE_API_KEY|JWT_SECRET|ADMIN_PASSWORD) [ -n "${!name:-}" ] || export "$name=$value" ;;
    esac
  done <"$file"
  if [ -z "${KAFKA_SASL_USERNAME:-}" ]; then
    export KAFKA_SASL_USERNAME=platform-operator
    KAFKA_SASL_PASSWORD=$(kafka_password platform-operator)
    export KAFKA_SASL_PASSWORD
  fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  ensure_secrets
  case "${1:-}" in
    admin-password) grep '^ADMIN_PASSWORD=' "$(secrets_file)" | cut -d= -f2- ;;
    path) secrets_file; echo ;;
    *) echo "usage: $0 admin-password | path" >&2; exit 2 ;;
  esac
fi

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
set -euo pipefail

secrets_file() {
  local state="${PLATFORM_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/rust-event-platform}"
  printf '%s/secrets.env' "$state"
}

# random_text <bytes>: URL-safe random text.
random_text() { head -c "$1" /dev/urandom | base64 | tr -d '\n=' | tr '+/' '-_'; }

ensure_secrets() {
  local file; file=$(secrets_file)
  [ -s "$file" ] && return 0
  mkdir -p "$(dirname "$file")"
  (
    umask 077
    # The admin password must meet the sign-up rules: upper, lower, digit and a special character.
    {
      echo "# Development secrets of this machine, generated $(date -u +%FT%TZ). Keep private."
      echo "SERVICE_API_KEY=$(random_text 36)"
      echo "JWT_SECRET=$(random_text 48)"
      echo "ADMIN_PASSWORD=Dev-$(random_text 18)-9a!"
    } >"$file.tmp"
    mv "$file.tmp" "$file"
  )
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
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  ensure_secrets
  case "${1:-}" in
    admin-password) grep '^ADMIN_PASSWORD=' "$(secrets_file)" | cut -d= -f2- ;;
    path) secrets_file; echo ;;
    *) echo "usage: $0 admin-password | path" >&2; exit 2 ;;
  esac
fi

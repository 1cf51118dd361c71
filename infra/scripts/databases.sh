#!/usr/bin/env bash
# Creates the services' databases on the local PostgreSQL when missing.
# Schemas are the services' business: they run their migrations at start.
set -euo pipefail
source "$(dirname "$0")/common.sh"

command -v psql >/dev/null || die "psql not found; install PostgreSQL's client (apt-get install postgresql-client)"
wait_for "PostgreSQL at $DATABASE_URL" 30 psql "$DATABASE_URL/postgres" -Atqc 'SELECT 1'
for db in "$USER_DATABASE_NAME" "$ORDER_DATABASE_NAME" "$PAYMENT_DATABASE_NAME"; do
  if [ "$(psql "$DATABASE_URL/postgres" -Atqc "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]; then
    say "Creating database $db"
    psql "$DATABASE_URL/postgres" -qc "CREATE DATABASE \"$db\""
  fi
done

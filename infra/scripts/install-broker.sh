#!/usr/bin/env bash
#! Installs the Kafka-protocol broker `tansu` machine-wide, once.
#
# Pinned version and the sqlite (`libsql`) storage engine; `--locked` because
# newer transitive releases break 0.6.0's build. Installed under
# $TANSU_INSTALL_ROOT (default /usr/local), never into the work tree, so a
# fresh CI clone on the same machine finds it already there.
set -euo pipefail

TANSU_VERSION="${TANSU_VERSION:-0.6.0}"
TANSU_INSTALL_ROOT="${TANSU_INSTALL_ROOT:-/usr/local}"
bin="$TANSU_INSTALL_ROOT/bin/tansu"

if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
  echo "tansu $TANSU_VERSION already installed at $bin"
  exit 0
fi

echo "Installing tansu $TANSU_VERSION into $TANSU_INSTALL_ROOT (a cold build takes 20-30 minutes on 2 cores)..."
# Build artefacts live outside the work tree and are reused by a retried install.
export CARGO_TARGET_DIR="${TANSU_BUILD_DIR:-/var/tmp/tansu-build}"
cargo install tansu --version "=$TANSU_VERSION" --locked --features libsql --root "$TANSU_INSTALL_ROOT"
"$bin" --version

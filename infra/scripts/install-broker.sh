#!/usr/bin/env bash
#! Installs the Kafka-protocol broker `nisshi` machine-wide, once.
#
# Pinned version, built `--locked` with only the sqlite (`libsql`) storage
# engine. The release's lockfile declares rustc 1.96 because of one dependency
# (rama 0.4.0) that builds fine on 1.95, hence `--ignore-rust-version`: the
# stable toolchain is the one every machine has. Installed under
# $NISSHI_INSTALL_ROOT (default /usr/local), never into the work tree, so a
# fresh clone on the same machine finds it already there.
set -euo pipefail

NISSHI_VERSION="${NISSHI_VERSION:-0.8.1}"
NISSHI_INSTALL_ROOT="${NISSHI_INSTALL_ROOT:-/usr/local}"
bin="$NISSHI_INSTALL_ROOT/bin/nisshi"

if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "$NISSHI_VERSION"; then
  echo "nisshi $NISSHI_VERSION already installed at $bin"
  exit 0
fi

echo "Installing nisshi $NISSHI_VERSION into $NISSHI_INSTALL_ROOT (a cold build takes about 10 minutes on 2 cores)..."
# Build artefacts live outside the work tree and are reused by a retried install.
export CARGO_TARGET_DIR="${NISSHI_BUILD_DIR:-/var/tmp/nisshi-build}"
# Linked as the workspace links (mold when installed): the broker is one large binary.
linker="$(cd "$(dirname "$0")" && pwd)/link-gcc.sh"
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER="$linker"
if ! cargo install nisshi --version "=$NISSHI_VERSION" --locked --ignore-rust-version \
    --no-default-features --features libsql --root "$NISSHI_INSTALL_ROOT"; then
  echo >&2 "error: could not build the broker nisshi $NISSHI_VERSION with $(rustc --version)."
  echo >&2 "       It needs a Rust toolchain (stable >= 1.95), gcc and crates.io; see docs/getting-started.md."
  exit 1
fi
"$bin" --version

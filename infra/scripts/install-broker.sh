#!/usr/bin/env bash
#! Installs the Kafka-protocol broker `nisshi` machine-wide, once.
#
# Pinned version, built from its published crate with the lockfile it was released with
# and only the sqlite (`libsql`) storage engine, plus the patches in infra/broker/patches
# (one folder per crate of nisshi's, each patch saying what it fixes and why). The
# release's lockfile declares rustc 1.96 because of one dependency (rama 0.4.0) that
# builds fine on 1.95, hence `--ignore-rust-version`: the stable toolchain is the one
# every machine has. Installed under $NISSHI_INSTALL_ROOT (default /usr/local), never into
# the work tree, so a fresh clone on the same machine finds it already there; a stamp
# beside it records the version and patches it was built with, and a change to either
# builds it again.
set -euo pipefail

NISSHI_VERSION="${NISSHI_VERSION:-0.8.1}"
# The published crate's checksum (crates.io's index), so that what is built is the release;
# set it with NISSHI_VERSION when building another one.
NISSHI_SHA256="${NISSHI_SHA256:-a357efb09b95f96964366d41b030341aa9c729544ae4dd9cdd012d7ef8e19a52}"
NISSHI_INSTALL_ROOT="${NISSHI_INSTALL_ROOT:-/usr/local}"
PATCHES="$(cd "$(dirname "$0")/../broker/patches" && pwd)"
bin="$NISSHI_INSTALL_ROOT/bin/nisshi"
stamp="$NISSHI_INSTALL_ROOT/share/nisshi/build"

# How it is optimised, chosen by measuring a cold build and the broker alone (pipelined and
# serial produce, one consumer, a backlog drain, a produce → consume hop) on one machine:
# - opt-level 1 by default: the broker's time goes to sqlite and system calls, and its own
#   largest crates (the protocol codec, the storage layers) spend their compile time before
#   code generation, so level 3 cost a fifth more CPU for no throughput that held from one
#   run to the next;
# - level 3 where the work is computation: sqlite itself, checksums, SCRAM's hashing, buffers;
# - level 0 for what the platform never runs: schema validation and object storage (no
#   topic here has a schema; storage is sqlite, not PostgreSQL), TLS (clients connect in
#   plain text with SCRAM), compression codecs (no producer compresses) and the
#   command-line tools beside the broker.
HOT_CRATES=(libsql-ffi libsql-sys libsql crc-fast crc32c crc32fast crc sha2 hmac pbkdf2 bytes)
COLD_CRATES=(aws-lc-sys rustls rustls-webpki x509-cert zstd-sys lz4-sys jsonschema referencing fancy-regex rhai
  object_store protobuf protobuf-parse apache-avro bigdecimal reqwest tokio-postgres deadpool-postgres
  postgres-types postgres-protocol clap_builder nisshi-generator nisshi-cat nisshi-perf)
profile=(--config profile.release.opt-level=1)
for crate in "${HOT_CRATES[@]}"; do profile+=(--config "profile.release.package.$crate.opt-level=3"); done
for crate in "${COLD_CRATES[@]}"; do profile+=(--config "profile.release.package.$crate.opt-level=0"); done

wanted_stamp() {
  echo "nisshi $NISSHI_VERSION"
  echo "${profile[*]}"
  (cd "$PATCHES" && find . -name '*.patch' | LC_ALL=C sort | xargs sha256sum)
}

# Taken before the build, so that a patch added meanwhile makes the next run build again.
wanted=$(wanted_stamp)
if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ]; then
  echo "nisshi $NISSHI_VERSION (with infra/broker/patches) already installed at $bin"
  exit 0
fi

fail() {
  echo >&2 "error: could not build the broker nisshi $NISSHI_VERSION with $(rustc --version): $1"
  echo >&2 "       It needs a Rust toolchain (stable >= 1.95), gcc and crates.io; see docs/getting-started.md."
  exit 1
}

# Build artefacts live outside the work tree and are reused by a retried install.
export CARGO_TARGET_DIR="${NISSHI_BUILD_DIR:-/var/tmp/nisshi-build}"
sources="$CARGO_TARGET_DIR/sources"
rm -rf "$sources" && mkdir -p "$sources"

# unpack <crate> <sha256>: the published crate, checked against its checksum, into $sources.
unpack() {
  local crate="$1-$NISSHI_VERSION" sum=$2
  curl -sSfL --retry 3 -o "$sources/$crate.crate" "https://static.crates.io/crates/$1/$crate.crate" ||
    fail "cannot download $crate from crates.io"
  echo "$sum  $sources/$crate.crate" | sha256sum --check --quiet - || fail "$crate.crate does not match its checksum"
  tar -xzf "$sources/$crate.crate" -C "$sources"
}

echo "Installing nisshi $NISSHI_VERSION into $NISSHI_INSTALL_ROOT (a cold build takes 10 to 17 minutes on 2 cores)..."
unpack nisshi "$NISSHI_SHA256"
root="$sources/nisshi-$NISSHI_VERSION"
echo '[patch.crates-io]' >>"$root/Cargo.toml"
for dir in "$PATCHES"/*/; do
  crate=$(basename "$dir")
  # The checksum nisshi's own lockfile pins for this crate.
  sum=$(awk -v name="$crate" -v version="$NISSHI_VERSION" '
    $1 == "name" { n = $3 } $1 == "version" { v = $3 }
    $1 == "checksum" && n == "\"" name "\"" && v == "\"" version "\"" { gsub(/"/, "", $3); print $3 }' "$root/Cargo.lock")
  [ -n "$sum" ] || fail "nisshi $NISSHI_VERSION's lockfile has no $crate $NISSHI_VERSION to patch"
  unpack "$crate" "$sum"
  for patch in "$dir"*.patch; do
    patch --quiet -p1 -d "$sources/$crate-$NISSHI_VERSION" <"$patch" || fail "$patch does not apply"
  done
  echo "$crate = { path = \"../$crate-$NISSHI_VERSION\" }" >>"$root/Cargo.toml"
done

# Linked as the workspace links (mold when installed): the broker is one large binary.
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER="$(cd "$(dirname "$0")" && pwd)/link-gcc.sh"
# `cargo build` keeps every version the release's lockfile pins; only the patched crates'
# entries change, from crates.io to their folders here.
(cd "$root" && cargo build --release "${profile[@]}" --ignore-rust-version --no-default-features --features libsql) ||
  fail "cargo build failed"
install -D -m 0755 "$CARGO_TARGET_DIR/release/nisshi" "$bin"
mkdir -p "$(dirname "$stamp")" && echo "$wanted" >"$stamp"
"$bin" --version

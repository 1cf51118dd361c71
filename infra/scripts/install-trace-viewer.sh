#!/usr/bin/env bash
# Installs the native trace viewer once per machine: the Jaeger UI (2.14.1, the real
# one, vendored as a production build) in front of an in-memory OTLP/gRPC trace store,
# as shipped by the crates.io package otlp-embedded (RisingWave's; its `basic` example
# is a complete server). Why this viewer: docs/decisions/trace-viewer.md.
#
# The example binds fixed addresses (0.0.0.0:10188 for the UI, 0.0.0.0:43177 for OTLP)
# and keeps 100 traces; before building, this script rewrites those literals so that
# it listens on 127.0.0.1 only, where the services export (127.0.0.1:4317) and where
# Jaeger's UI usually is (127.0.0.1:16686), both overridable at run time:
#
#   TRACE_VIEWER_UI_ADDR    the UI and its query API (127.0.0.1:16686)
#   TRACE_VIEWER_OTLP_ADDR  the OTLP gRPC receiver  (127.0.0.1:4317)
#
# It also answers the UI's own routes (/trace/<id>, /search) with 200 instead of a
# 307 without a Location, and tells services apart by name when they set no
# service.instance.id (ours do not: every span would show as one service otherwise).
# Every rewrite is checked; a changed crate fails loudly.
#
# Installed under $TRACE_VIEWER_INSTALL_ROOT (/usr/local/lib/otlp-jaeger-viewer), built
# in $TRACE_VIEWER_BUILD_DIR (/var/tmp/otlp-jaeger-viewer-build): never in the work tree.
# Needs cargo and protoc (Debian's protobuf-compiler, installed here when missing).
set -euo pipefail

CRATE=otlp-embedded
VERSION="0.0.2"
# Bump when the rewrites below change, so that machines rebuild.
REVISION=3
INSTALL_ROOT="${TRACE_VIEWER_INSTALL_ROOT:-/usr/local/lib/otlp-jaeger-viewer}"
BUILD_DIR="${TRACE_VIEWER_BUILD_DIR:-/var/tmp/otlp-jaeger-viewer-build}"
NAME=otlp-jaeger-viewer
BIN="$INSTALL_ROOT/bin/$NAME"
STAMP="$INSTALL_ROOT/installed"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [ "${1:-}" = bin ]; then echo "$BIN"; exit 0; fi
if [ -x "$BIN" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$CRATE $VERSION rev $REVISION" ]; then
  echo "trace viewer ($CRATE $VERSION) already installed at $BIN"
  exit 0
fi

command -v cargo >/dev/null || { echo "error: cargo is needed to build the trace viewer" >&2; exit 1; }
command -v python3 >/dev/null || { echo "error: python3 is needed to prepare the trace viewer" >&2; exit 1; }
command -v protoc >/dev/null || "$HERE/apt-install.sh" protobuf-compiler

started=$SECONDS
echo "==> Installing the trace viewer: Jaeger UI from the crate $CRATE $VERSION into $INSTALL_ROOT (a few minutes, once)"
mkdir -p "$BUILD_DIR"

# 1. The crate's source, through cargo (checksum-verified against the registry index).
fetch="$BUILD_DIR/fetch"
mkdir -p "$fetch/src"
cat >"$fetch/Cargo.toml" <<EOF
[package]
name = "fetch-$CRATE"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
$CRATE = "=$VERSION"

[workspace]
EOF
: >"$fetch/src/lib.rs"
(cd "$fetch" && cargo fetch --quiet)
crate_file=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/cache" -name "$CRATE-$VERSION.crate" | head -n1)
[ -n "$crate_file" ] || { echo "error: cargo fetch did not leave $CRATE-$VERSION.crate in the registry cache" >&2; exit 1; }
src="$BUILD_DIR/$CRATE-$VERSION"
rm -rf "$src"
tar -xzf "$crate_file" -C "$BUILD_DIR"

# 2. The rewrites, each expected exactly once.
python3 - "$src" "$NAME" <<'EOF'
import pathlib, sys

src, name = pathlib.Path(sys.argv[1]), sys.argv[2]

def rewrite(rel, old, new):
    path = src / rel
    text = path.read_text()
    count = text.count(old)
    if count != 1:
        sys.exit(f"error: expected {old!r} once in {rel}, found it {count} times; the crate changed")
    path.write_text(text.replace(old, new))

ui = 'std::env::var("TRACE_VIEWER_UI_ADDR").unwrap_or_else(|_| "127.0.0.1:16686".to_owned())'
otlp = 'std::env::var("TRACE_VIEWER_OTLP_ADDR").unwrap_or_else(|_| "127.0.0.1:4317".to_owned())'
rewrite("examples/basic.rs", 'TcpListener::bind("0.0.0.0:10188")', f"TcpListener::bind({ui})")
rewrite("examples/basic.rs", '.serve("0.0.0.0:43177".parse().unwrap())', f".serve({otlp}.parse().unwrap())")
rewrite("examples/basic.rs", 'println!("Open http://localhost:10188/ to view the UI.");',
        f'println!("Jaeger UI on http://{{}}/", {ui});')
rewrite("examples/basic.rs", 'println!("Send traces to http://localhost:43177/v1/trace.");',
        f'println!("OTLP gRPC on {{}}", {otlp});')
# Room for the traces of a test run, not only the last 100.
rewrite("examples/basic.rs", "max_length: 100,", "max_length: 2000,")
# The crate's memory estimate only grows (measured: 286 MB estimated with 0 traces held
# after an hour of traffic), and past the limit every new trace is evicted on arrival:
# the viewer went blank. The count limit alone bounds it (2 000 traces of ours are tens of MB).
rewrite("examples/basic.rs", "max_memory_usage: 1 << 27, // 128 MiB", "max_memory_usage: usize::MAX / 2, // the count limit governs")
# The single-page app's routes answer 200 (a 307 without a Location confuses clients).
rewrite("src/jaeger/ui.rs", "(StatusCode::TEMPORARY_REDIRECT, index_html(base_tag))", "(StatusCode::OK, index_html(base_tag))")
# A Jaeger process per service: the crate keys processes by service.instance.id alone.
rewrite("src/jaeger/model.rs", "let key = value.service_instance_id().to_owned();",
        'let key = format!("{}#{}", value.service_name(), value.service_instance_id());')
rewrite("Cargo.toml", 'name = "basic"', f'name = "{name}"')
EOF

# 3. Build and install (the crate's own Cargo.lock, so the build is the one its authors tested).
# Optimisation level 1: the viewer decodes a developer's spans, not production traffic, and
# the build is part of a first `make demo` (level 3 took 148 CPU-seconds on 2 cores, level 1
# 115).
CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_TARGET_DIR="$BUILD_DIR/target" cargo install --quiet --locked --path "$src" --example "$NAME" --root "$INSTALL_ROOT" --force
echo "$CRATE $VERSION rev $REVISION" >"$STAMP"
# The build (about 430 MB) is not needed any more: only a new REVISION rebuilds.
rm -rf "$BUILD_DIR/target" "$BUILD_DIR/fetch" "$src"; rmdir "$BUILD_DIR" 2>/dev/null || true
echo "==> Trace viewer installed at $BIN in $((SECONDS - started))s"

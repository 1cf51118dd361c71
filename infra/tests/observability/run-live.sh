#!/usr/bin/env bash
# Traffic first (the demo flow), then every dashboard and rule expression against it.
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
"$root/demo-quick.sh" >/dev/null
"$root/infra/tests/observability/check.sh"

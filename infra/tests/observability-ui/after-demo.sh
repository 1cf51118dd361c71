#!/usr/bin/env bash
# The part of run.sh that needs the platform up (run.sh runs it under with-platform.sh):
# the demo, a check of every link it printed, Prometheus's data, then the browser test.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../../scripts/common.sh"
: "${ARTIFACT_DIR:?run through run.sh}" "${EXPECTED_TOPICS:?run through run.sh}"

passed=0
ok() { passed=$((passed + 1)); printf '  ok %2d - %s\n' "$passed" "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; echo "demo-links: $passed passed, 1 failed"; exit 1; }

# ---------------------------------------------------------------- the demo and its links
say "Running the demo"
demo="$ARTIFACT_DIR/demo.txt"
"$ROOT/demo-quick.sh" | tee "$demo"
# Every http(s) address the demo printed under "Where to look next", without its colours.
mapfile -t links < <(sed 's/\x1b\[[0-9;]*m//g' "$demo" | sed -n '/Where to look next/,$p' |
  grep -oE 'https?://[^[:space:]]+' | sort -u)
[ "${#links[@]}" -gt 0 ] || fail "the demo printed no link"
say "Checking the ${#links[@]} links the demo printed"
for link in "${links[@]}"; do
  "$ROOT/infra/scripts/answers.sh" "$link" >/dev/null || fail "the demo printed $link, which does not answer"
  ok "answers: $link"
done
pick() { printf '%s\n' "${links[@]}" | grep -E "$1" | head -n1; }
TRACE_URL=$(pick '/trace/[0-9a-f]{32}$') || true
GRAPH_URL=$(pick 'graph\?g0\.expr=') || true
ALERTS_URL=$(pick '/alerts$') || true
[ -n "$TRACE_URL" ] || fail "the demo printed no trace link (is the trace viewer running? infra/scripts/traces.sh status)"
[ -n "$GRAPH_URL" ] || fail "the demo printed no link to the settled-events graph (is Prometheus running?)"
[ -n "$ALERTS_URL" ] || fail "the demo printed no link to Prometheus's alerts"
ok "the demo printed the trace, settled-events graph and alerts links"
echo "demo-links: $passed passed, 0 failed"

# ---------------------------------------------------------------- Prometheus's data
# The graph link's query, evaluated through the API until every topic has a series
# (Prometheus scrapes every 5 s and the rate needs two samples).
query=$(python3 -c 'import sys, urllib.parse as u; print(u.parse_qs(u.urlsplit(sys.argv[1]).query)["g0.expr"][0])' "$GRAPH_URL")
prom="${GRAPH_URL%%/graph*}"
prom="${prom%/classic}"
topics_with_data() {
  curl -fsS --max-time 3 "$prom/api/v1/query" --data-urlencode "query=$query" |
    jq -r '[.data.result[].metric.topic] | unique | join(",")'
}
say "Waiting for Prometheus to have '$query' for every topic"
deadline=$((SECONDS + OBS_UI_TIMEOUT_SECONDS))
until have=$(topics_with_data 2>/dev/null) &&
  python3 -c 'import sys; sys.exit(not set(sys.argv[1].split(",")) <= set(sys.argv[2].split(",")))' "$EXPECTED_TOPICS" "$have"; do
  [ "$SECONDS" -lt "$deadline" ] || fail "after ${OBS_UI_TIMEOUT_SECONDS}s Prometheus has '$query' for [${have:-}] only, not $EXPECTED_TOPICS"
  sleep 0.5
done
rules=$(curl -fsS "$prom/api/v1/rules" | jq '[.data.groups[].rules[]] | length')
say "Prometheus has the query for $have; $rules rules loaded"

# ---------------------------------------------------------------- the pages
say "Opening the demo's links in headless Chromium"
TRACE_URL="$TRACE_URL" GRAPH_URL="$GRAPH_URL" ALERTS_URL="$ALERTS_URL" node "$HERE/ui.test.mjs"

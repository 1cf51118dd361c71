#!/usr/bin/env bash
# answers.sh <url>: does this link answer? Exits 0 when a GET, following redirects as a
# browser would, ends in a status below 400 within LINK_TIMEOUT_SECONDS (3), and prints
# the URL it ended on (so a caller can print the address that really serves the page);
# exits 1 and prints nothing otherwise. Used by demo-quick.sh before it prints a link,
# and by the tests that check every printed link.
set -euo pipefail

[ "$#" -eq 1 ] || { echo "usage: $0 <url>" >&2; exit 2; }
out=$(curl -s -o /dev/null -L --max-redirs 5 --max-time "${LINK_TIMEOUT_SECONDS:-3}" \
  -w '%{http_code} %{url_effective}' "$1" 2>/dev/null) || exit 1
status=${out%% *}
[ "$status" -ge 200 ] && [ "$status" -lt 400 ] || exit 1
printf '%s\n' "${out#* }"

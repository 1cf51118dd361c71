#!/usr/bin/env bash
# schemathesis against the running platform, through the gateway, with every check:
# once as a dedicated admin, once as a dedicated user. Installs schemathesis (pinned,
# PyPI) into a virtualenv outside the work tree on first use. Fails on any failure and
# prints the failing cases (schemathesis names each with a curl command to reproduce).
#
#   GATEWAY_URL        the gateway (http://127.0.0.1:3005)
#   ST_MAX_EXAMPLES    generated cases per operation and phase (40)
set -euo pipefail
source "$(dirname "$0")/../../scripts/common.sh"
HERE="$(cd "$(dirname "$0")" && pwd)"
GATEWAY_URL="${GATEWAY_URL:-http://127.0.0.1:3005}"
ADMIN_EMAIL="${ADMIN_EMAIL:-admin@example.com}"
VERSION=4.32.5
VENV="${SCHEMATHESIS_VENV:-$STATE_DIR/venvs/schemathesis-$VERSION}"

if [ ! -x "$VENV/bin/st" ]; then
  say "Installing schemathesis $VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "schemathesis==$VERSION"
fi

json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
# post <path> <json> [token]: the body of the answer; a 429 (an earlier run spent this
# address's sign-in budget) is retried after its Retry-After, for a minute at most.
post() {
  local deadline=$((SECONDS + 70)) headers body
  headers=$(mktemp)
  while :; do
    body=$(curl -sS -D "$headers" -X POST -H 'content-type: application/json' ${3:+-H "authorization: Bearer $3"} -d "$2" "$GATEWAY_URL$1")
    if ! head -n1 "$headers" | grep -q ' 429' || [ "$SECONDS" -ge "$deadline" ]; then break; fi
    sleep "$(awk 'tolower($1) == "retry-after:" {print $2 + 0}' "$headers")"
  done
  rm -f "$headers"
  printf '%s' "$body"
}

admin_login=$(post /api/auth/login "{\"email\":\"$ADMIN_EMAIL\",\"password\":\"$ADMIN_PASSWORD\"}")
platform_admin_token=$(json "['access_token']" <<<"$admin_login")
platform_admin_id=$(json "['user']['id']" <<<"$admin_login")
suffix=$(python3 -c 'import uuid; print(uuid.uuid4().hex[:12])')
password="St-$(python3 -c 'import secrets; print(secrets.token_urlsafe(12))')-1a"
st_admin_id=$(post /api/users "{\"email\":\"st-admin-$suffix@example.com\",\"name\":\"Schemathesis Admin\",\"password\":\"$password\",\"role\":\"admin\"}" "$platform_admin_token" | json "['id']")
st_admin_token=$(post /api/auth/login "{\"email\":\"st-admin-$suffix@example.com\",\"password\":\"$password\"}" | json "['access_token']")
user_signup=$(post /api/auth/register "{\"email\":\"st-user-$suffix@example.com\",\"name\":\"Schemathesis User\",\"password\":\"$password\"}")
st_user_token=$(json "['access_token']" <<<"$user_signup")
st_user_id=$(json "['user']['id']" <<<"$user_signup")
export ST_PROTECTED_IDS="$platform_admin_id,$st_admin_id,$st_user_id"

reports="$STATE_DIR/schemathesis"
mkdir -p "$reports"
status=0
for who in user admin; do
  token_var="st_${who}_token"
  say "schemathesis as the $who (every check; report in $reports/$who.xml)"
  # Run from the reports directory: schemathesis keeps a cache in its working directory.
  (cd "$reports" && PYTHONPATH="$HERE" "$VENV/bin/st" --config-file "$HERE/schemathesis.toml" run "$GATEWAY_URL/api/docs/openapi.json" \
    --url "$GATEWAY_URL" \
    --header "Authorization: Bearer ${!token_var}" \
    --max-examples "${ST_MAX_EXAMPLES:-40}" \
    --report junit --report-junit-path "$reports/$who.xml" \
    --no-color) || status=$?
done
[ "$status" = 0 ] && say "schemathesis: 0 failures" || die "schemathesis found failures (above)"

#!/usr/bin/env bash
# Fuzzes every documented operation with Schemathesis (pinned in requirements.txt) against the app
# under real Spin: `spin up` on a free loopback port with a fresh state directory, an administrator
# made through the API, then `st run` on /openapi.json for a bounded time. Exits non-zero on any
# failure. Reports (JUnit, NDJSON events, HAR, the pytest reproductions) land in target/fuzz/.
#
# Needs the built components (target/wasm32-wasip2/release/*.wasm: scripts/test builds them),
# python3 and curl. Spin comes from SPIN_BIN, else PATH.
#
#   FUZZ_SECONDS  the time budget of the whole Schemathesis run (default 150)
#   FUZZ_WORKERS  concurrent workers (default 2: the machine has 2 cores)
#   FUZZ_CHECKS   comma-separated checks (default: the list below)
#   FUZZ_SEED     a Hypothesis seed, to replay a run
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)

SPIN="${SPIN_BIN:-spin}"
FUZZ_SECONDS="${FUZZ_SECONDS:-150}"
FUZZ_WORKERS="${FUZZ_WORKERS:-2}"
FUZZ_CHECKS="${FUZZ_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection,ignored_auth,response_headers_conformance,missing_required_header,unsupported_method,allow_header_conformance,use_after_free,ensure_resource_availability}"
VENV="$ROOT/target/fuzz-venv"
REPORT_DIR="$ROOT/target/fuzz"
REQUIREMENTS="$ROOT/tests/fuzz/requirements.txt"
KV_STORES=(sessions signing audit similarity_cache)
START_TIMEOUT=300

say() { printf '==> %s\n' "$*"; }
die() { printf 'fuzz: %s\n' "$*" >&2; exit 2; }

command -v "$SPIN" >/dev/null 2>&1 || die "Spin is not installed: install Spin 4.1 or later or set SPIN_BIN"
command -v curl >/dev/null 2>&1 || die "curl is needed"
command -v python3 >/dev/null 2>&1 || die "python3 is needed"
for source in $(sed -n 's/^source *= *"\(.*\)"/\1/p' spin.toml); do
    [ -f "$source" ] || die "$source is missing: build the components first (scripts/test does)"
done

# --- Schemathesis, exactly as pinned (the venv is reused while requirements.txt is unchanged) ---
stamp="$VENV/.requirements.sha256"
want=$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)
if [ ! -x "$VENV/bin/st" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    say "Schemathesis into $VENV"
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
    echo "$want" >"$stamp"
fi
"$VENV/bin/st" --version

# --- The app under real Spin ---
STATE=$(mktemp -d "${TMPDIR:-/tmp}/spin-fuzz.XXXXXX")
SPIN_PGID=""
cleanup() {
    local status=$?
    if [ -n "$SPIN_PGID" ]; then
        kill -TERM -- "-$SPIN_PGID" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 -- "-$SPIN_PGID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$SPIN_PGID" 2>/dev/null || true
        wait "$SPIN_PGID" 2>/dev/null || true
    fi
    [ -f "$STATE/spin.log" ] && cp "$STATE/spin.log" "$REPORT_DIR/spin.log" 2>/dev/null
    rm -rf "$STATE"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rm -rf "$REPORT_DIR"
mkdir -p "$REPORT_DIR"

for label in "${KV_STORES[@]}"; do
    printf '[key_value_store.%s]\ntype = "spin"\npath = "%s/kv-%s.db"\n\n' "$label" "$STATE" "${label//_/-}"
done >"$STATE/runtime-config.toml"

BOOTSTRAP_TOKEN=$(python3 -c 'import secrets, string; a = string.ascii_letters + string.digits; print("".join(secrets.choice(a) for _ in range(40)))')

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

start_spin() {
    PORT=$(free_port)
    # setsid: spin up serves through a child process (spin trigger http); the group ends both.
    setsid "$SPIN" up --from spin.toml --listen "127.0.0.1:$PORT" --state-dir "$STATE" \
        --runtime-config-file "$STATE/runtime-config.toml" \
        --variable "admin_bootstrap_token=$BOOTSTRAP_TOKEN" \
        --variable register_max_per_client=100000 \
        --variable login_max_failures_per_client=100000 \
        --variable login_max_failures_per_user_client=100000 \
        </dev/null >>"$STATE/spin.log" 2>&1 &
    SPIN_PGID=$!
    local waited=0
    until curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/health"; do
        if ! kill -0 "$SPIN_PGID" 2>/dev/null; then
            wait "$SPIN_PGID" 2>/dev/null || true
            SPIN_PGID=""
            return 1
        fi
        [ "$waited" -lt "$START_TIMEOUT" ] || die "spin up did not listen within ${START_TIMEOUT}s (log: $REPORT_DIR/spin.log)"
        sleep 1
        waited=$((waited + 1))
    done
}
say "spin up ($("$SPIN" --version))"
for attempt in 1 2 3; do
    start_spin && break
    grep -q "in use" "$STATE/spin.log" && [ "$attempt" -lt 3 ] || { cat "$STATE/spin.log" >&2; die "spin up failed"; }
done
BASE="http://127.0.0.1:$PORT"
say "listening on $BASE"

# --- An administrator, made through the API ---
# api METHOD PATH BODY [TOKEN]: prints the response body; fails unless the status is 2xx.
api() {
    local out status
    out=$(mktemp "$STATE/response.XXXXXX")
    status=$(curl -sS -o "$out" -w '%{http_code}' -X "$1" "$BASE$2" \
        -H 'content-type: application/json' ${4:+-H "authorization: Bearer $4"} --data "$3")
    if [ "${status:0:1}" != 2 ]; then
        printf 'fuzz: %s %s answered %s: %s\n' "$1" "$2" "$status" "$(cat "$out")" >&2
        return 1
    fi
    cat "$out"
}
json_field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
json_object() { python3 -c 'import json, sys; print(json.dumps(dict(zip(sys.argv[1::2], sys.argv[2::2]))))' "$@"; }

FUZZ_ADMIN_USER="fuzz-admin-$(python3 -c 'import secrets; print(secrets.token_hex(6))')"
FUZZ_ADMIN_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
credentials=$(json_object username "$FUZZ_ADMIN_USER" password "$FUZZ_ADMIN_PASSWORD")
api POST /auth/register "$credentials" >/dev/null
token=$(api POST /auth/login "$credentials" | json_field access_token)
api POST /auth/bootstrap "$(json_object bootstrap_token "$BOOTSTRAP_TOKEN")" "$token" >/dev/null
token=$(api POST /auth/login "$credentials" | json_field access_token)
role=$(curl -sS "$BASE/auth/authenticate" -H "authorization: Bearer $token" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["user"]["role"])')
[ "$role" = admin ] || die "$FUZZ_ADMIN_USER is $role, not admin"
say "administrator $FUZZ_ADMIN_USER"
export FUZZ_ADMIN_USER FUZZ_ADMIN_PASSWORD

# The token comes from POST /auth/login, and again whenever a request answers 401 (the fuzzed
# POST /auth/logout ends the session; a role change ends every session of the account), so every
# request carries a valid administrator's token. The report, cache and example database stay
# under target/fuzz.
cat >"$STATE/schemathesis.toml" <<EOF
hooks = "$STATE/fuzz_hooks.py"

[cache]
directory = "$REPORT_DIR/cache"

[generation]
database = "$REPORT_DIR/examples"

# Two statuses the checks do not expect by default, both the precise answer: 413 for a body over
# the route's size limit (whatever else is wrong with it), and 428 for a missing If-Match
# (RFC 6585: the route requires a conditional request). Both are documented in openapi.yaml.
[checks.negative_data_rejection]
expected-statuses = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]

[checks.missing_required_header]
expected-statuses = [400, 401, 403, 406, 415, 422, 428]

[auth.dynamic.openapi.bearer]
path = "/auth/login"
payload = { username = "\${FUZZ_ADMIN_USER}", password = "\${FUZZ_ADMIN_PASSWORD}" }
extract_selector = "/access_token"
retry_on = [401]
EOF

# Hooks:
# - The run's administrator is left alone: once the fuzzer has made another user an admin,
#   DELETE /auth/users/{username} or PUT /auth/users/{username}/role on it succeeds, and every
#   later request is unauthenticated.
# - Spin itself, before any component runs, answers an empty 500 to a request with a header
#   value that is not UTF-8 (its log: "Error processing request: incomplete utf-8 byte
#   sequence"); requests sends header values as Latin-1, so the fuzzer finds that often. Those
#   failures are dropped, and only those: the app never saw the request.
# - ast.parse is serialised: CPython before 3.11.8 and 3.12.2 can fail two concurrent parses
#   with "SystemError: AST constructor recursion depth mismatch" (gh-106905), and Hypothesis
#   parses source from both workers.
cat >"$STATE/fuzz_hooks.py" <<'PY'
import ast
import os
import threading
import urllib.parse

import schemathesis

_parse = ast.parse
_parse_lock = threading.Lock()


def _serialised_parse(*args, **kwargs):
    with _parse_lock:
        return _parse(*args, **kwargs)


ast.parse = _serialised_parse

ADMIN = os.environ["FUZZ_ADMIN_USER"].lower()


@schemathesis.hook
def before_call(context, case, kwargs):
    params = case.path_parameters
    if not params or "username" not in params:
        return
    if ADMIN in urllib.parse.unquote(str(params["username"])).lower():
        params["username"] = "someone-else"


def _not_utf8(value):
    if isinstance(value, str):
        value = value.encode("latin-1", "replace")
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


@schemathesis.hook
def filter_failure(context, failure, case, response):
    refused_by_spin = (
        response.status_code == 500
        and not response.content
        and any(_not_utf8(value) for value in response.request.headers.values())
    )
    return not refused_by_spin
PY

say "schemathesis for ${FUZZ_SECONDS}s, ${FUZZ_WORKERS} workers, checks: $FUZZ_CHECKS"
command=(
    "$VENV/bin/st" --config-file "$STATE/schemathesis.toml" --no-color
    run "$BASE/openapi.json"
    --phases examples,coverage,fuzzing,stateful
    --checks "$FUZZ_CHECKS"
    --max-time "$FUZZ_SECONDS"
    --workers "$FUZZ_WORKERS"
    --request-timeout 30
    --suppress-health-check too_slow
    --report junit,ndjson,har,pytest
    --report-dir "$REPORT_DIR"
    --report-junit-path "$REPORT_DIR/junit.xml"
)
[ -n "${FUZZ_SEED:-}" ] && command+=(--seed "$FUZZ_SEED")
status=0
(cd "$REPORT_DIR" && "${command[@]}") || status=$?
say "schemathesis exited $status; reports in $REPORT_DIR"
exit "$status"

#!/usr/bin/env bash
# The API docs page in headless Chromium: starts the built app under real Spin (`spin up`) on a
# fresh state directory and runs docs.mjs against it (see there for what it checks). The
# screenshot lands in target/docs-screenshot.png.
#
# Needs the components built for wasm32-wasip2 (scripts/test builds them first), Spin 4.1 or
# later (`spin` on PATH, or SPIN_BIN), and Node.js with npm. Installs Debian's chromium when it
# is missing; playwright-core (pinned in package-lock.json) only drives it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
SPIN="${SPIN_BIN:-spin}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if [ ! -x /usr/bin/chromium ]; then
    # The package lists are usually fresh enough; refresh them only when that is not so.
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get install -y --no-install-recommends chromium ||
        { as_root apt-get update && as_root apt-get install -y --no-install-recommends chromium; }
fi

(cd "$here" && npm ci --no-audit --no-fund --loglevel=error)

state=$(mktemp -d)
spin_group=""
stop() {
    local status=$?
    if [ -n "$spin_group" ]; then
        # spin up runs the HTTP trigger as a child process: end the whole group.
        kill -TERM -- "-$spin_group" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 -- "-$spin_group" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$spin_group" 2>/dev/null || true
    fi
    if [ "$status" != 0 ] && [ -f "$state/spin.log" ]; then
        echo "--- the end of Spin's output:" >&2
        tail -n 40 "$state/spin.log" >&2
    fi
    rm -rf "$state"
}
trap stop EXIT

# The app's key-value stores, each in its own file under the state directory (as the end-to-end
# tests' local_runtime_config does).
for label in sessions signing audit similarity_cache; do
    printf '[key_value_store.%s]\ntype = "spin"\npath = "%s/kv-%s.db"\n\n' \
        "$label" "$state" "${label//_/-}"
done >"$state/runtime-config.toml"

port=$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => {
    console.log(s.address().port); s.close(); });')
# In a session of its own, so that it and its children form one process group to stop.
setsid "$SPIN" up --from "$root/spin.toml" --listen "127.0.0.1:$port" --state-dir "$state" \
    --runtime-config-file "$state/runtime-config.toml" >"$state/spin.log" 2>&1 </dev/null &
spin_group=$!

# Spin listens once every component is loaded, which takes minutes when it has not compiled
# and cached them before (scripts/test has, with `bench --warm-up`).
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }
for _ in $(seq 600); do
    listening && break
    if ! kill -0 "$spin_group" 2>/dev/null; then
        echo "spin up exited before listening on port $port" >&2
        exit 1
    fi
    sleep 0.5
done
listening || { echo "spin up did not listen on port $port within 5 minutes" >&2; exit 1; }

cd "$root"
DOCS_BASE_URL="http://127.0.0.1:$port" node "$here/docs.mjs"

#!/bin/sh
# Renders a runtime-config template (redis-libsql.toml.template beside this script unless TEMPLATE
# is given) into a real Spin runtime-config file. Spin does not expand environment variables in
# runtime config, so the placeholders are filled here from REDIS_URL, LIBSQL_URL and LIBSQL_TOKEN
# (see the template for what each holds). OUTPUT "-" writes to standard output; a file is
# written with mode 600 (it holds the token) and replaced atomically.
#
#   REDIS_URL=redis://127.0.0.1:6379 LIBSQL_URL=http://127.0.0.1:8080 LIBSQL_TOKEN= \
#     runtime-config/render.sh .spin/runtime-config.toml
#   spin up --runtime-config-file .spin/runtime-config.toml
#
# Usage: render.sh OUTPUT [TEMPLATE]
set -eu

die() {
    printf 'render.sh: %s\n' "$*" >&2
    exit 1
}

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: render.sh OUTPUT [TEMPLATE]"
output=$1
template=${2:-$(dirname "$0")/redis-libsql.toml.template}
[ -r "$template" ] || die "cannot read the template $template"

[ -n "${REDIS_URL:-}" ] || die "REDIS_URL is not set (e.g. redis://127.0.0.1:6379)"
[ -n "${LIBSQL_URL:-}" ] || die "LIBSQL_URL is not set (e.g. http://127.0.0.1:8080)"
[ "${LIBSQL_TOKEN+set}" = set ] || die "LIBSQL_TOKEN is not set (set it empty for no token)"

REDIS_URL=${REDIS_URL%/}
case $REDIS_URL in
    redis://*/* | rediss://*/*) die "REDIS_URL must not name a database: each store adds its own" ;;
    redis://?* | rediss://?*) ;;
    *) die "REDIS_URL must start with redis:// or rediss://" ;;
esac
case $LIBSQL_URL in
    http://?* | https://?*) ;;
    libsql://*) die "LIBSQL_URL must be http:// or https:// (Spin rejects libsql://)" ;;
    *) die "LIBSQL_URL must start with http:// or https://" ;;
esac

# The values land inside TOML "..." strings: refuse what would need escaping there.
newline='
'
for name in REDIS_URL LIBSQL_URL LIBSQL_TOKEN; do
    eval "value=\${$name}"
    case $value in
        *'"'* | *'\'* | *"$newline"*) die "$name must be one line without \" or \\" ;;
    esac
done

# A value as a sed replacement: & and the | delimiter escaped (backslashes were refused above).
replacement() {
    printf '%s' "$1" | sed 's/[&|]/\\&/g'
}

render() {
    sed -e "s|\\\${REDIS_URL}|$(replacement "$REDIS_URL")|g" \
        -e "s|\\\${LIBSQL_URL}|$(replacement "$LIBSQL_URL")|g" \
        -e "s|\\\${LIBSQL_TOKEN}|$(replacement "$LIBSQL_TOKEN")|g" \
        "$template"
}

rendered=$(render) || die "could not render $template"
case $rendered in
    *'${'*) die "$template has a placeholder this script does not fill" ;;
esac

if [ "$output" = - ]; then
    printf '%s\n' "$rendered"
else
    umask 077
    partial="$output.partial.$$"
    printf '%s\n' "$rendered" >"$partial" || die "cannot write $partial"
    mv -f "$partial" "$output" || die "cannot replace $output"
fi

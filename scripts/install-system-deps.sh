#!/usr/bin/env bash
# Debian packages the test suite's real parts need: WordPress (PHP + MariaDB) for the end-to-end tests,
# python3.11-doc (the evaluation corpus and real-world HTML for the cleaning tests), prometheus (promtool and
# the real-Prometheus scrape test; its service is not started), and chromium +
# chromium-driver (the chat widget's real-browser test). Installs only what
# is missing; needs root (or sudo). Under CI=true a failed install is an error.
set -uo pipefail
pkgs=(wordpress php8.2-cli php8.2-mysql php8.2-curl php8.2-xml php8.2-mbstring mariadb-server python3.11-doc chromium chromium-driver prometheus)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && { echo "system packages: all present"; exit 0; }
echo "system packages missing: ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo -n"
if ! command -v apt-get >/dev/null 2>&1 || { [ "$(id -u)" -ne 0 ] && [ -z "$SUDO" ]; }; then
  echo "cannot install them here (no apt-get, or not root); the tests that need them will skip"
  [ "${CI:-}" = "true" ] && exit 1
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
status=$?
[ $status -eq 0 ] && echo "system packages: installed ${missing[*]}" || echo "system packages: install failed ($status)"
[ $status -ne 0 ] && [ "${CI:-}" = "true" ] && exit 1
exit 0

#!/usr/bin/env bash
# Create the Wagtail virtualenv the Wagtail tests run in (.cmsrag/wagtail-venv): Wagtail 8 and the
# wagtail-cmsrag app (editable, so the tests exercise the source tree). Wagtail never goes into cmsrag's own
# .venv. Idempotent: a stamp keyed by this script and the app's pyproject.toml skips the work when nothing
# changed. Override the interpreter with PYTHON=python3.11 and the folder with CMSRAG_WAGTAIL_VENV=...
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV="${CMSRAG_WAGTAIL_VENV:-.cmsrag/wagtail-venv}"
APP="services/ingest/wagtail_cmsrag"
WAGTAIL_SPEC='wagtail>=8,<9'
key="$(cat "$0" "$APP/pyproject.toml" | cksum | cut -d' ' -f1)"
stamp="$VENV/.setup-$key"

if [ -f "$stamp" ] && [ -x "$VENV/bin/python" ]; then
  echo "Wagtail venv: up to date ($VENV)"
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "$WAGTAIL_SPEC" -e "$APP"
"$VENV/bin/python" -c 'import wagtail, wagtail_cmsrag, django; print("Wagtail venv: wagtail", wagtail.__version__, "django", django.__version__, "wagtail-cmsrag", wagtail_cmsrag.__version__)'
rm -f "$VENV"/.setup-* && touch "$stamp"

#!/usr/bin/env bash
# Install gs_core (editable) with its test and Blender extras into ./.venv, from scratch if needed.
# Usage: ./install.sh            (idempotent; re-running only installs what is missing)
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  # bpy (Blender as a module) 5.0 needs exactly Python 3.11
  if command -v python3.11 >/dev/null 2>&1; then PY=python3.11; else PY=python3; fi
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=".venv/bin/python -m pip"
$PIP install --quiet --upgrade pip
# torch first, pinned: where a local CPU wheel is on pip's find-links it is used, so nothing pulls
# the multi-GB CUDA build; elsewhere pip takes the registry's wheel of the same version.
$PIP install --quiet "torch==2.13.0"
extras="dev"
if .venv/bin/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then extras="dev,blender"; fi
$PIP install --quiet -e ".[$extras]"
echo "installed gs_core into .venv (extras: $extras)"

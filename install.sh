#!/usr/bin/env bash
# Install gs_core (editable) with its test, SAM/CLIP, Ray and Blender extras into ./.venv, from scratch if needed,
# and compile its native CPU kernels (three instruction-set variants, a few minutes once).
#
# Usage: ./install.sh [--cpu | --cuda]
#   --cpu   torch's (and torchvision's) CPU-only build (about 200 MB) from https://download.pytorch.org/whl/cpu
#   --cuda  torch's default build from PyPI, with its CUDA libraries (several GB)
#   neither: --cuda when nvidia-smi sees an NVIDIA GPU, else --cpu. A torch wheel on pip's
#   find-links is used in either case; re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")"
TORCH_VERSION=2.14.1
TORCHVISION_VERSION=0.29.1
CPU_INDEX=https://download.pytorch.org/whl/cpu
flavour=auto
for arg in "$@"; do
  case "$arg" in
    --cpu) flavour=cpu ;;
    --cuda) flavour=cuda ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option $arg (use --cpu or --cuda)" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  # bpy (Blender as a module) 5.0 needs exactly Python 3.11
  if command -v python3.11 >/dev/null 2>&1; then PY=python3.11; else PY=python3; fi
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=".venv/bin/python -m pip"
# build tools first (numpy too: torch warns at build time without it): the package is built without
# isolation, against the venv's torch (setup.py)
$PIP install --quiet --upgrade pip "setuptools>=77" wheel ninja
$PIP install --quiet numpy  # not --upgrade: bpy 5.0.1 pins numpy<2, and a re-run must not move it

if [ "$flavour" = auto ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then flavour=cuda; else flavour=cpu; fi
fi
torch_args=()
if [ "$flavour" = cpu ]; then
  # pip prefers 2.13.0+cpu from this index over PyPI's 2.13.0 (which pulls the CUDA libraries)
  if .venv/bin/python -c "import socket; socket.getaddrinfo('download.pytorch.org', 443)" 2>/dev/null; then
    torch_args=(--extra-index-url "$CPU_INDEX")
  else
    echo "install.sh: $CPU_INDEX is unreachable; taking torch from pip's find-links or PyPI" >&2
  fi
fi
echo "installing torch $TORCH_VERSION ($flavour)"
$PIP install --quiet "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION" ${torch_args[@]+"${torch_args[@]}"}

extras="dev,sam,clip,ray"
if .venv/bin/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then extras="dev,sam,clip,ray,blender"; fi
echo "installing gs_core (extras: $extras) and compiling its native CPU kernels..."
start=$SECONDS
$PIP install --quiet --no-build-isolation -e ".[$extras]"
.venv/bin/python -c "from gs_core.engine import cpu_backend as c; print('native CPU kernels:', ', '.join(c.prebuilt_variants()) or 'none prebuilt (compiled on first use)')"
echo "installed gs_core into .venv in $((SECONDS - start)) s (torch: $flavour; extras: $extras)"

# Blender 4.5 LTS beside 5.0: its bpy wheel in a second venv (Python 3.11 only, like bpy 5.0), where
# tests/blender_addon/test_blender_versions.py re-runs the add-on's Blender tests. A .pth file appends
# the checkout (gs_core, never built into the tree from here) and .venv's packages (torch, scipy, ...)
# after the venv's own site-packages, so bpy 4.5 and its numpy win and nothing is installed twice.
if [[ "$extras" == *blender* ]]; then
  start=$SECONDS
  [ -x .venv-blender45/bin/python ] || .venv/bin/python -m venv .venv-blender45
  .venv-blender45/bin/python -m pip install --quiet "bpy==4.5.15" numpy plyfile pytest
  main_site=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  lts_site=$(.venv-blender45/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  printf '%s\n%s\n' "$PWD" "$main_site" > "$lts_site/gs_core_checkout.pth"
  echo "made .venv-blender45 (Blender 4.5 LTS for the add-on tests) in $((SECONDS - start)) s"
fi

#!/usr/bin/env bash
# The GPU check (issue 30): on a fresh GPU machine with this checkout, install what gs_core needs,
# build the native CPU kernels and gsplat's CUDA extension (in parallel), then run
# `gs-core bench gpu`: every engine op on CUDA against the CPU kernels (garden points, 1M scene) with
# times side by side, `pytest -m cuda`, `gs-core demo --device cuda`, the targets. Writes
# OUT/gpu_check.json and OUT/gpu_check.txt (and the build logs). Meant to end within 8 minutes.
# Without a GPU it runs the CPU self-check of the CUDA path's ops and says which GPU parts it skipped.
#
#   tools/gpu_check.sh [--out DIR] [--wheels DIR] [--quick] [bench gpu options: --count N --repeats R ...]
#   tools/gpu_check.sh --fetch-wheels DIR      (here, with a package index: wheels for an offline GPU machine)
#
# --wheels DIR   install missing packages from DIR only (pip --no-index --find-links DIR): for GPU
#                machines without a package index. torch is never installed or replaced.
# --quick        no installs or builds, and a small run (no 1M scene, one repeat): what the test suite runs
# PYTHON=...     the interpreter (default: .venv/bin/python when present, else python3)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
OUT=gpu_check WHEELS="" QUICK=0 FETCH=""
PASS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --wheels) WHEELS=${2:?--wheels needs a folder}; shift ;;
    --out) OUT=${2:?--out needs a folder}; shift ;;
    --fetch-wheels) FETCH=${2:?--fetch-wheels needs a folder}; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) PASS+=("$1") ;;
  esac
  shift
done
say() { echo "gpu_check: $*"; }
# the packages gs_core and the check need beyond torch, and gsplat for the GPU
PKGS="numpy scipy scikit-learn plyfile zstandard pillow rich tqdm ninja packaging pytest gsplat==1.5.3 jaxtyping"

if [ -n "$FETCH" ]; then  # for the GPU machine's Python (3.12, x86-64 manylinux): pure and binary wheels
  mkdir -p "$FETCH"
  exec "$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$FETCH" gsplat==1.5.3 plyfile zstandard
fi

mkdir -p "$OUT" || { echo "gpu_check: --out $OUT: cannot create it" >&2; exit 2; }
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
start=$(date +%s)
if ! probe=$("$PY" -c "import sys, torch; print(int(torch.cuda.is_available()), sys.version.split()[0])" 2>/dev/null); then
  echo "gpu_check: $PY has no torch: install torch (with CUDA on a GPU machine) first" >&2
  exit 2
fi
CUDA=${probe%% *}
say "python ${probe#* }, CUDA device: $([ "$CUDA" = 1 ] && echo yes || echo 'none (GPU parts will be skipped)')"

if [ "$QUICK" = 0 ]; then
  missing=$("$PY" - <<'EOF'
import importlib.util as u
mods = {"numpy": "numpy", "scipy": "scipy", "sklearn": "scikit-learn", "plyfile": "plyfile",
        "zstandard": "zstandard", "PIL": "pillow", "rich": "rich", "tqdm": "tqdm", "ninja": "ninja",
        "packaging": "packaging", "pytest": "pytest", "jaxtyping": "jaxtyping", "gsplat": "gsplat==1.5.3"}
print(" ".join(p for m, p in mods.items() if u.find_spec(m) is None))
EOF
)
  if [ "$CUDA" = 0 ]; then missing=$(echo "$missing" | tr ' ' '\n' | grep -v -e '^gsplat' -e '^jaxtyping' | tr '\n' ' '); fi
  missing=$(echo $missing)
  if [ -n "$missing" ]; then
    say "installing: $missing"
    src=()
    [ -n "$WHEELS" ] && src=(--no-index --find-links "$WHEELS")
    # shellcheck disable=SC2086
    "$PY" -m pip install -q "${src[@]}" $missing > "$OUT/install.log" 2>&1 \
      || say "pip install failed (see $OUT/install.log); without a package index, pass --wheels DIR (--fetch-wheels makes it)"
  else
    say "every package is already installed"
  fi
  say "building the native CPU kernels$([ "$CUDA" = 1 ] && echo " and gsplat's CUDA extension") (logs in $OUT)"
  "$PY" -c "from gs_core.engine import cpu_backend; cpu_backend.load(verbose=True); print('cpu kernels:', cpu_backend.variant())" \
    > "$OUT/build_cpu.log" 2>&1 &
  cpu_pid=$!
  if [ "$CUDA" = 1 ]; then
    TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-$("$PY" -c "import torch; print('%d.%d' % torch.cuda.get_device_capability())")}
    MAX_JOBS=${MAX_JOBS:-$(nproc)}
    export TORCH_CUDA_ARCH_LIST MAX_JOBS
    timeout 420 "$PY" -c "from gsplat.cuda._backend import _C; assert _C is not None, 'no CUDA toolkit'; print('gsplat built')" \
      > "$OUT/build_gsplat.log" 2>&1 || say "gsplat's CUDA extension did not build (see $OUT/build_gsplat.log): render runs batched"
  fi
  wait "$cpu_pid" || say "the native CPU kernels did not build (see $OUT/build_cpu.log)"
  say "installs and builds took $(( $(date +%s) - start )) s"
fi

args=(--out "$OUT")
[ "$QUICK" = 1 ] && args+=(--count 0 --repeats 1)
"$PY" -m gs_core.cli bench gpu "${args[@]}" "${PASS[@]}"
status=$?
say "done in $(( $(date +%s) - start )) s, exit $status"
exit $status

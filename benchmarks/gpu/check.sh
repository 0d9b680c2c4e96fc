#!/usr/bin/env bash
# One-shot GPU check for interface4d: CuPy simulation against NumPy, and its timings.
# Here: bash benchmarks/gpu/fetch_wheels.sh (the Python 3.12 wheels the device image lacks, into
# the git-excluded .gpu/). On the device machine, from the repo root, .gpu carried:
#   bash benchmarks/gpu/check.sh        (about 5 min; device tool timeout_s 330)
# Writes $OUT/check.log and $OUT/gpu_timings.json (plus pytest_gpu.xml, nvidia-smi.txt).
# Every step is bounded by `timeout` and by a global deadline (DEADLINE_S, default 285 s).
set -u
START=$SECONDS
DEADLINE_S=${DEADLINE_S:-285}
OUT=${OUT:-.gpu/out-local}
PY=${PY:-python3}
SITE=${SITE:-/tmp/site}
mkdir -p "$OUT"
{
export PYTHONUNBUFFERED=1 NUMBA_CACHE_DIR=/tmp/i4d-numba MPLBACKEND=Agg
export TF_CPP_MIN_LOG_LEVEL=2
J="$OUT/gpu_timings.json"
W=/tmp/i4d-arrays
mkdir -p "$W"

left() { echo $((DEADLINE_S - (SECONDS - START))); }
# bounded CAP: the smaller of CAP and the time left before the deadline (minus a margin)
bounded() { local cap=$1 l; l=$(( $(left) - 5 )); [ "$l" -lt "$cap" ] && echo "$l" || echo "$cap"; }
step() { echo; echo "=== [$((SECONDS - START)) s, $(left) s left] $*"; }

step "install wheels -> $SITE"
$PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .gpu/whl/*.whl
echo "pip rc=$?"
export PYTHONPATH="$SITE:$PWD/src:$PWD"
NUMPY_FALLBACK=0
# FORCE_NP_FALLBACK=1: take the fallback path without trying (a local test of it)
if [ "${FORCE_NP_FALLBACK:-0}" = 1 ] || ! timeout -k 5 90 $PY -c "import abtem, interface4d.simulate"; then
  step "import abtem FAILED under the image's numpy: trying the numpy 2.0.2 fallback"
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/np .gpu/np/*.whl
  export PYTHONPATH="/tmp/np:$PYTHONPATH"
  NUMPY_FALLBACK=1
  timeout -k 5 90 $PY -c "import abtem, interface4d.simulate" || echo "import abtem STILL FAILS with numpy 2.0.2"
fi
echo "NUMPY_FALLBACK=$NUMPY_FALLBACK PYTHONPATH=$PYTHONPATH"

step "devices and versions"
nvidia-smi -L
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
timeout -k 5 60 $PY -c "import cupy; print('cupy device count', cupy.cuda.runtime.getDeviceCount())"
timeout -k 5 90 $PY - "$J" "$NUMPY_FALLBACK" <<'EOF'
import importlib, json, os, platform, sys, time
t0 = time.perf_counter()
v = {"python": platform.python_version(), "executable": sys.executable,
     "numpy_fallback": sys.argv[2] == "1"}
for m in ("numpy", "scipy", "numba", "llvmlite", "cupy", "dask", "zarr", "ase", "pyfftw",
          "h5py", "pandas", "abtem"):
    try:
        mod = importlib.import_module(m)
        v[m] = getattr(mod, "__version__", "?")
        if m in ("numpy", "abtem", "cupy"):
            v[m + "_file"] = mod.__file__
    except Exception as e:
        v[m] = f"IMPORT FAILED: {type(e).__name__}: {e}"
try:
    import cupy
    v["cuda_runtime"] = cupy.cuda.runtime.runtimeGetVersion()
    v["cuda_driver"] = cupy.cuda.runtime.driverGetVersion()
    n = cupy.cuda.runtime.getDeviceProperties(0)["name"]
    v["gpu"] = n.decode() if isinstance(n, bytes) else str(n)
except Exception as e:
    v["cupy_error"] = f"{type(e).__name__}: {e}"
v["import_all_s"] = round(time.perf_counter() - t0, 2)
print(json.dumps(v, indent=1))
path = sys.argv[1]
data = json.load(open(path)) if os.path.exists(path) else {}
data["environment"] = v
json.dump(data, open(path, "w"), indent=1)
EOF

step "pytest: CPU vs GPU agreement (tests/test_simulate.py -k gpu)"
T=$(bounded 150)
timeout -k 10 "$T" $PY -m pytest -q -p no:cacheprovider tests/test_simulate.py -k gpu -rA \
  --junitxml="$OUT/pytest_gpu.xml"
echo "pytest rc=$? (timeout ${T}s)"

TC="benchmarks/gpu/time_cells.py --json $J"
DEMO="--config config.yaml --cell t200/step-d26"
run_tc() {  # run_tc CAP OMP_THREADS args...
  local cap=$1 omp=$2; shift 2
  local T; T=$(bounded "$cap")
  if [ "$T" -lt 15 ]; then echo "SKIPPED (deadline): $*"; return; fi
  OMP_NUM_THREADS=$omp timeout -k 10 "$T" $PY $TC "$@"
  local rc=$?
  echo "rc=$rc (timeout ${T}s)"
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then $PY $TC --mark-timeout "$2" "$T"; fi
}

step "demo cell t200/step-d26 on the GPU (3 runs: the first warms CuPy up)"
run_tc 120 1 --label demo-gpu $DEMO --device gpu --threads 1 --repeat 3 --save $W/demo-gpu.npy

step "demo cell on the CPU, threads=1 (as the demo config runs it)"
run_tc 120 1 --label demo-cpu-t1 $DEMO --device cpu --threads 1 --save $W/demo-cpu-t1.npy

step "GPU vs CPU agreement on the demo cell"
timeout -k 5 60 $PY $TC --compare demo-cpu-t1=$W/demo-cpu-t1.npy demo-gpu=$W/demo-gpu.npy

step "demo cell on the CPU, threads=16 (max_batch 80: 2 dask tasks)"
run_tc 90 16 --label demo-cpu-t16 $DEMO --device cpu --threads 16

step "demo cell on the CPU, threads=16, max_batch 10 (16 dask tasks)"
run_tc 60 16 --label demo-cpu-t16-b10 $DEMO --device cpu --threads 16 --max-batch 10

step "paper-scale cell t200/step-d26 on the GPU, 1 of 8 phonon configs, threads=1"
run_tc 100 1 --label paper-gpu-1config --config profiles/paper.yaml --cell t200/step-d26 \
  --device gpu --threads 1 --num-configs 1

N=$($PY $TC --configs-that-fit paper-gpu-1config $(( $(left) - 10 )) 2>/dev/null || echo 0)
step "paper-scale cell t200/step-d26 on the GPU, $N of 8 configs (what fits), threads=7 (Summit profile)"
if [ "${N:-0}" -ge 2 ]; then
  run_tc 240 7 --label "paper-gpu-${N}configs-t7" --config profiles/paper.yaml \
    --cell t200/step-d26 --device gpu --threads 7 --num-configs "$N"
else
  echo "SKIPPED: fewer than 2 configs fit in the time left"
fi

step "done"
nvidia-smi --query-gpu=name,memory.used,memory.total,utilization.gpu --format=csv
$PY - "$J" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
for k, r in d.get("runs", {}).items():
    print(f"{k:32s} {r.get('status')!s:8s} runs={[x['wall_s'] for x in r.get('runs', [])]} "
          f"best={r.get('best_wall_s')} rel_l2={r.get('rel_l2_per_pattern_max')} "
          f"err={r.get('error')}")
EOF
echo "total $((SECONDS - START)) s"
} 2>&1 | tee -a "$OUT/check.log"

#!/usr/bin/env bash
# Download the Python 3.12 wheels that benchmarks/gpu/check.sh installs on the device machine
# (its image has CuPy, NumPy, SciPy, numba, pandas, h5py, pytest, but not abTEM and its
# dependencies), into .gpu/ (git-excluded; ~40 MB, carried to the device).
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
PLAT=(--only-binary=:all: --python-version 3.12 --implementation cp
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
# abTEM needs traitlets and ipywidgets (and so IPython and comm) at import time
python3 -m pip download -q --no-deps "${PLAT[@]}" -d .gpu/whl \
  abtem==1.0.11 ase==3.29.0 dask==2026.8.0 distributed==2026.8.0 zarr==3.1.6 \
  numcodecs==0.16.6 pyfftw==0.15.1 partd==1.4.2 locket==1.0.0 donfig==0.8.1.post1 \
  google-crc32c==1.9.0 jsonschema==4.26.0 jsonschema-specifications==2025.9.1 \
  referencing==0.37.0 rpds-py==2026.9.1 emdfile==0.0.16 traitlets==5.16.1 \
  ipywidgets==8.1.9 comm==0.2.3 ipython==9.18.1
# the fallback, where abTEM 1.0.11 does not import under the image's NumPy
python3 -m pip download -q --no-deps "${PLAT[@]}" -d .gpu/np numpy==2.0.2
du -sh .gpu

#!/usr/bin/env bash
# Reproduce the ames-similarity model from a clean Debian machine:
#   models/reproduce.sh
# 1. installs R's modeldata package from Debian (r-cran-modeldata) unless present,
# 2. exports modeldata::ames to models/data/ames.csv (git-ignored),
# 3. creates models/.venv (git-ignored) and installs the pinned requirements.txt,
# 4. runs train.py (writes the .onnx, .json, metrics.json and reference files),
# 5. re-checks the reference files with tract 0.23 (check_tract.py).
# Idempotent and deterministic: running it again rewrites identical files.
set -euo pipefail
cd "$(dirname "$0")"

export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONHASHSEED=0

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

need_apt=()
if ! command -v Rscript >/dev/null 2>&1 \
   || ! Rscript -e 'quit(status = !requireNamespace("modeldata", quietly = TRUE))' >/dev/null 2>&1; then
  need_apt+=(r-cran-modeldata)
fi
if ! command -v python3 >/dev/null 2>&1; then
  need_apt+=(python3 python3-venv)
elif ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  need_apt+=(python3-venv)
fi
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "==> apt-get install ${need_apt[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${need_apt[@]}"
fi

echo "==> exporting modeldata::ames to models/data/ames.csv"
mkdir -p data
Rscript -e 'write.csv(modeldata::ames, "data/ames.csv.tmp", row.names = FALSE)'
mv data/ames.csv.tmp data/ames.csv

if [ ! -x .venv/bin/python ]; then
  echo "==> creating models/.venv"
  python3 -m venv .venv
fi
echo "==> pip install -r requirements.txt"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt

echo "==> training"
.venv/bin/python train.py "$@"

echo "==> tract parity check"
.venv/bin/python check_tract.py

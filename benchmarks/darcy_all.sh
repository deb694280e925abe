#!/usr/bin/env bash
# Darcy numbers in the README (about 40 minutes on one CPU core): tune zeta / alpha on 20
# validation samples at 50 steps, then paired comparisons on 100 test samples at 20 and 50 steps.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
for d in forward inverse; do
  $PY -m benchmarks.pde_restoration tune --problem darcy --direction $d --steps 50 --n 20 --zetas 1 3 10 --alphas 0.1 1
done
$PY -m benchmarks.pde_restoration compare --problem darcy --steps 20 50 --n 100

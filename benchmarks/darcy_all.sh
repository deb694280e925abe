#!/usr/bin/env bash
# Darcy numbers in docs/pde.md (about 2.5 hours on one CPU core): tune zeta / alpha / PDE-residual
# weight on 20 validation samples at 50 steps, then paired comparisons on 100 test samples at 20,
# 50 and 100 steps with those values. Finished runs under runs/bench_pde are reused, so growing a
# grid costs only the new values.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
for d in forward inverse; do
  $PY -m benchmarks.pde_restoration tune --problem darcy --direction $d --steps 50 --n 20 --zetas 0.1 0.3 1 3 10 --alphas 0.01 0.1 1 \
    --residual-weights 0.0001 0.0003 0.001 0.003 0.01 0.03
done
$PY -m benchmarks.pde_restoration compare --problem darcy --steps 20 50 100 --n 100

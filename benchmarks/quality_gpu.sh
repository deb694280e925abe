#!/usr/bin/env bash
# The full suite's MNIST quality cells on one GPU: one process per task, side by side (a 32x32
# UNet at batch 100 leaves a GPU mostly idle, so tasks share it well). Each process is exactly
#   python -m benchmarks.run --suite full --only quality --tasks TASK --steps STEPS --batch-size 100
# (validation tuning first, then paired test comparisons; finished cells and samples are kept),
# and the result files merge under a lock. The report (table, plot, README) follows.
#
#   bash benchmarks/quality_gpu.sh                       # every task, steps 20 50 100 1000
#   TASKS="hdr sr4" STEPS="100 1000" EXTRA="--zeta-extensions 1" bash benchmarks/quality_gpu.sh
set -u
cd "$(dirname "$0")/.."
PY=${PY:-python}
TASKS=${TASKS:-"box_inpainting random_inpainting sr4 gaussian_blur motion_blur phase_retrieval hdr"}
STEPS=${STEPS:-"20 50 100 1000"}
EXTRA=${EXTRA:-}
LOGS=${LOGS:-logs/quality_gpu}
mkdir -p "$LOGS"
for task in $TASKS; do
    OMP_NUM_THREADS=2 "$PY" -m benchmarks.run --suite full --only quality --tasks "$task" --steps $STEPS \
        --batch-size 100 $EXTRA >"$LOGS/$task.log" 2>&1 &
done
status=0
for job in $(jobs -p); do wait "$job" || status=1; done
"$PY" -m benchmarks.run --suite full --only report >"$LOGS/report.log" 2>&1 || status=1
exit $status

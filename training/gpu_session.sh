#!/bin/bash
# One GPU session for the piano models, as run on an H100 on 2026-11-26 (docs/models.md): the piano GPT and
# two sparse long-context fine-tunes (stride 64 and 256) share the GPU, each from the shipped piano GPT, each
# time-boxed; a run whose fast path dies in its first minutes (torch.compile, flex_attention) starts again
# without it. Each run is exported (fp16) to $RUNS/export/NAME and, with OUT set, packed as $OUT/NAME.tgz.
#
# Usage: bash training/gpu_session.sh                         # RUNS=runs/gpu, MINUTES=7.5, python3
#        PY=.venv/bin/python MINUTES=0.2 EXTRA="--train.batch_size=2 --train.compile=false --train.workers=0" \
#            bash training/gpu_session.sh                     # a CPU smoke run of the same paths
# Then, on any machine: python -m training.evaluate --model runs/gpu/export/piano --data data/piano ...
set -u
PY=${PY:-python3}; RUNS=${RUNS:-runs/gpu}; M=${MINUTES:-7.5}; OUT=${OUT:-}
export PYTHONUNBUFFERED=1 TQDM_MININTERVAL=15
T0=$(date +%s)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
$PY -c "import torch,sys;print('torch',torch.__version__,'cuda',torch.cuda.is_available(),sys.version.split()[0])"
mkdir -p "$RUNS/export" "$RUNS/logs"

minutes() { $PY -c "print(round(max(0.2, $1), 3))"; }

train() {  # NAME CONFIG MINUTES ARGS...; FALLBACK: the args of a second try if the first dies without a checkpoint
  local name=$1 cfg=$2 m=$3; shift 3
  local log="$RUNS/logs/$name.log" t=$(date +%s)
  $PY -m training.train --config "$cfg" --train.out="$RUNS/$name" --train.max_minutes="$(minutes "$m")" "$@" ${EXTRA:-} > "$log" 2>&1
  local rc=$? el=$(( $(date +%s) - t ))
  echo "[$name] rc=$rc after ${el}s" | tee -a "$log"
  if [ $rc -ne 0 ] && [ ! -f "$RUNS/$name/model.safetensors" ]; then
    rm -rf "${RUNS:?}/$name"
    echo "[$name] second try with $FALLBACK" | tee -a "$log"
    $PY -m training.train --config "$cfg" --train.out="$RUNS/$name" --train.max_minutes="$(minutes "$m - $el / 60 - 0.3")" \
      "$@" ${EXTRA:-} $FALLBACK >> "$log" 2>&1
    echo "[$name] second try rc=$?" | tee -a "$log"
  fi
  $PY -m training.export --run "$RUNS/$name" --name "$name" --root "$RUNS/export" >> "$log" 2>&1
  cp "$log" "$RUNS/export/$name/train.log" 2>/dev/null
  if [ -n "$OUT" ]; then tar -C "$RUNS/export" -czf "$OUT/$name.tgz" "$name" && echo "[$name] packed $OUT/$name.tgz"; fi
}

FALLBACK="--train.compile=false" train piano training/configs/piano.toml "$M" \
  --train.batch_size=64 --train.lr=5e-4 --train.min_lr=3e-5 --train.warmup_steps=100 \
  --train.eval_interval=250 --train.eval_batches=20 --train.workers=3 &
for block in 64 256; do
  FALLBACK="--model.attn_impl=blocks" train sparse$block training/configs/sparse_piano.toml "$M - 0.2" \
    --train.batch_size=16 --train.lr=4e-4 --train.warmup_steps=50 --train.eval_interval=100 --train.eval_batches=8 \
    --train.workers=2 --model.attn_impl=flex --model.block=$block &
done
wait
echo "all done in $(( $(date +%s) - T0 ))s"
for n in piano sparse64 sparse256; do grep -E "^step|^done|rror|rc=" "$RUNS/logs/$n.log" | tail -6; done

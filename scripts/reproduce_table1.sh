#!/usr/bin/env bash
# Reproduce the paper's Table 1 on WaveEq and WaveEq-100, with and without S (issue: docs/results.md).
# Resumable: after an interruption, run it again; finished runs are skipped, partial ones resumed.
#
#   scripts/reproduce_table1.sh                 # all four runs, one after the other
#   RUNS="waveeq100 waveeq100_without_s" scripts/reproduce_table1.sh
#
# Environment: DATA (default data/waveeq), ROOT (default runs/table1), THREADS (intra-op threads per run),
# PRECISION_WAVEEQ (default bf16: see docs/performance.md for its accuracy check), PRECISION_WAVEEQ100 (32).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-data/waveeq}
ROOT=${ROOT:-runs/table1}
RUNS=${RUNS:-"waveeq100 waveeq100_without_s waveeq waveeq_without_s"}
THREADS=${THREADS:-2}
VARSEP=${VARSEP:-.venv/bin/varsep}

[ -f "$DATA/frames.npy" ] || "$VARSEP" generate waveeq --out "$DATA" --quiet

for run in $RUNS; do
  case $run in
    waveeq100*) config=waveeq100; precision=${PRECISION_WAVEEQ100:-32} ;;
    waveeq*)    config=waveeq;    precision=${PRECISION_WAVEEQ:-bf16} ;;
  esac
  extra=()
  [[ $run == *_without_s ]] && extra=(--model.content false)
  dir="$ROOT/$run"
  if [ -f "$dir/config.yaml" ]; then
    "$VARSEP" fit --resume --run-dir "$dir" --quiet --trainer.threads "$THREADS"
  else
    "$VARSEP" fit -c "$config" --run-dir "$dir" --quiet --data.root "$DATA" --trainer.precision "$precision" \
      --trainer.snapshot_every_n_epochs 25 --trainer.threads "$THREADS" "${extra[@]}"
  fi
  "$VARSEP" evaluate "$dir" --checkpoint last --no-swap --no-ssim --quiet --out "$dir/eval-last"
  "$VARSEP" evaluate "$dir" --checkpoint best --no-swap --no-ssim --quiet --out "$dir/eval-best"
done

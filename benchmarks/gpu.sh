#!/usr/bin/env bash
# The benchmarks on a lent CUDA machine (the device tool), in one run; it runs on a CPU too.
#
#   OUT=/tmp/gpu bash benchmarks/gpu.sh [--device cuda] [--data FOLDER|FILE.h5] [--steps 50] [--repeats 3]
#
# 1. the data file: --data FILE.h5 is used as it is; a folder (Oxford-102 layout, e.g. a copy of
#    ../shared/data/oxford102-64 carried into the work tree) is converted with `t2i data convert`, timed;
# 2. the shipped recipe's training (DF-GAN width 16, DiffAugment translation,cutout, batch 32):
#    benchmarks/train_speed.py, the trainer's defaults and --compile, --steps steps each;
# 3. generation, warm: benchmarks/generate_speed.py (1 caption, 1 caption + x4, 64 captions);
# and writes $OUT/gpu.json with all of it, the machine and the torch build.
# Nothing is installed: the work tree is put on PYTHONPATH (the device machine has no network).
set -euo pipefail

device=cuda data="" steps=50 repeats=3
while [ $# -gt 0 ]; do
    case "$1" in
        --device) device=$2; shift 2 ;;
        --data) data=$2; shift 2 ;;
        --steps) steps=$2; shift 2 ;;
        --repeats) repeats=$2; shift 2 ;;
        *) echo "gpu.sh: unknown argument $1 (see the header for usage)" >&2; exit 2 ;;
    esac
done
out=${OUT:?set OUT to the folder the results go to}
[ -n "$data" ] || { echo "gpu.sh: name the data with --data FILE.h5 or --data FOLDER" >&2; exit 2; }
mkdir -p "$out"
root=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
t2i() { python -m t2i_cli "$@"; }

convert_seconds=null
if [ -d "$data" ]; then
    start=$(date +%s.%N)
    t2i data convert "$data" "$out/data.h5" --force --device "$device"
    convert_seconds=$(python -c "print(round($(date +%s.%N) - $start, 1))")
    data="$out/data.h5"
elif [ ! -f "$data" ]; then
    echo "gpu.sh: --data $data is neither a folder nor a file" >&2; exit 2
fi

python "$root/benchmarks/train_speed.py" --data "$data" --device "$device" --arch dfgan --width 16 \
    --diffaug translation,cutout --variants "t2i (defaults)" "t2i --compile" --steps "$steps" --repeats "$repeats" \
    --json "$out/train_speed.json"
python "$root/benchmarks/generate_speed.py" --device "$device" --cold-repeats 0 --repeats 20 --json "$out/generate_speed.json"

python - "$out" "$convert_seconds" <<'EOF'
import json, platform, sys
from pathlib import Path

import torch

out, convert = Path(sys.argv[1]), json.loads(sys.argv[2])
report = {
    "machine": platform.node(), "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
    "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    "convert_seconds": convert,
    "train_speed": json.loads((out / "train_speed.json").read_text()),
    "generate_speed": json.loads((out / "generate_speed.json").read_text()),
}
(out / "gpu.json").write_text(json.dumps(report, indent=2) + "\n")
print(f"wrote {out / 'gpu.json'}")
EOF

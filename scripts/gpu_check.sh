#!/usr/bin/env bash
# GPU check (under 5 minutes): one worker per GPU x K trials per GPU on a short quickstart
# search; prints what each GPU did (utilisation and memory, sampled every second by
# nvidia-smi), the precision the trials used, and trials per minute.
#   scripts/gpu_check.sh [K]        (K trials per GPU, default 2)
set -euo pipefail
K="${1:-2}"
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
work="$(mktemp -d)"
command -v nvidia-smi >/dev/null || { echo "no nvidia-smi: not a GPU machine"; exit 2; }
nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader
nvidia-smi --query-gpu=timestamp,index,utilization.gpu,memory.used --format=csv,noheader \
  -l 1 > "$work/util.csv" &
smi=$!
trap 'kill $smi 2>/dev/null || true' EXIT
start=$(date +%s.%N)
(cd "$work" && "$PY" -m autodl search quickstart --data digits --trials 48 --epochs 15 \
  --devices auto --trials-per-device "$K" --study gpucheck --no-export --quiet --json \
  > summary.json)
end=$(date +%s.%N)
kill $smi 2>/dev/null || true
"$PY" - "$work" "$start" "$end" "$K" <<'PY'
import collections, json, sys
import optuna
from pathlib import Path
work, start, end, k = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
storage = optuna.storages.JournalStorage(
    optuna.storages.journal.JournalFileBackend(str(work / "autodl.journal")))
trials = optuna.load_study(study_name="gpucheck", storage=storage).trials
by_device = collections.Counter(t.user_attrs.get("device") for t in trials)
precision = collections.Counter(t.user_attrs.get("precision") for t in trials)
util = collections.defaultdict(list)
for line in (work / "util.csv").read_text().splitlines():
    parts = [p.strip() for p in line.split(",")]
    if len(parts) == 4 and parts[2].endswith("%"):
        util[parts[1]].append((int(parts[2].rstrip(" %")), parts[3]))
minutes = (end - start) / 60
print(f"trials per GPU slot: K={k}; trials by device: {dict(by_device)}")
print(f"precision used: {dict(precision)}")
for gpu, samples in sorted(util.items()):
    busy = [u for u, _ in samples]
    print(f"GPU {gpu}: mean utilisation {sum(busy) / len(busy):.0f}%, max {max(busy)}%, "
          f"last memory {samples[-1][1]} ({len(samples)} samples)")
summary = json.loads((work / "summary.json").read_text())
print(f"trials: {summary['trials']}; wall {end - start:.1f} s; "
      f"{len(trials) / minutes:.1f} trials/minute; best {summary['best']['value']:.4f}")
PY

#!/usr/bin/env bash
# The GPU check: every op x dtype with --device cuda --vs-device cpu, verdicts to $OUT, then the
# tests marked `cuda` (tests/backends/test_torch.py), which skip on a machine without CUDA.
# Run it on a machine with a CUDA device (the lent H100), from the repository root:
#     OUT=/tmp/out bash scripts/device_check.sh
# It installs lncheck into a fresh virtual environment if `lncheck` is not on PATH.
set -uo pipefail
OUT=${OUT:-/tmp/lncheck-device}
mkdir -p "$OUT"
if ! command -v lncheck >/dev/null; then
    python -m pip install -q -e . >"$OUT/install.log" 2>&1 || { echo "install failed"; tail "$OUT/install.log"; exit 1; }
fi
python -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0))" | tee "$OUT/device.txt"
python - "$OUT" <<'PY'
import json, subprocess, sys, numpy as np
out = sys.argv[1]
rng = np.random.default_rng(0)
np.save(f"{out}/x4.npy", rng.normal(1000, 1, (8, 16, 32, 32)).astype(np.float32))
np.save(f"{out}/x3.npy", rng.normal(0, 1, (8, 512, 1024)).astype(np.float32))
cases = {
    "layer_norm": [f"{out}/x3.npy", "--shape", "1024"],
    "rms_norm": [f"{out}/x3.npy", "--op", "rms_norm", "--shape", "1024"],
    "group_norm": [f"{out}/x4.npy", "--op", "group_norm", "--groups", "4"],
    "instance_norm": [f"{out}/x4.npy", "--op", "instance_norm", "--affine"],
    "batch_norm": [f"{out}/x4.npy", "--op", "batch_norm"],
    "local_response_norm": [f"{out}/x4.npy", "--op", "local_response_norm", "--size", "5"],
}
verdicts = {}
for op, args in cases.items():
    for dtype in ("float32", "float16", "bfloat16"):
        cmd = ["lncheck", "compare", *args, "--dtype", dtype, "--device", "cuda", "--vs-device", "cpu", "--json"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        entry = {"exit": done.returncode, "stderr": done.stderr.strip()[:300]}
        if done.stdout.strip():
            doc = json.loads(done.stdout)
            entry["worst"] = sorted(
                ((c["tolerance_used"] or 0, c["candidate"], c["quantity"], c["max_abs_err"]) for c in doc["checks"]),
                reverse=True,
            )[:3]
        verdicts[f"{op}/{dtype}"] = entry
        print(op, dtype, entry["exit"], entry.get("worst", entry["stderr"])[:1])
json.dump(verdicts, open(f"{out}/verdicts.json", "w"), indent=1)
PY
if python -c "import pytest, hypothesis" 2>/dev/null; then
    python -m pytest -q -m cuda -p no:cacheprovider tests/backends 2>&1 | tee "$OUT/pytest-cuda.txt" | tail -3
else
    echo "pytest or hypothesis not installed: the cuda-marked tests did not run" | tee "$OUT/pytest-cuda.txt"
fi

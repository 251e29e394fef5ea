"""One row as a folder a person can re-run: the arrays as .npy, a README with the lncheck
command and what the right verdict is (the layout of shared/cases/numerics/)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .cases import Inputs
from .judge import lncheck_op


def command(inp: Inputs) -> str:
    """The ``lncheck compare`` command line that checks ``y.npy`` on this input."""
    case = inp.case
    parts = ["lncheck compare x.npy"]
    op = lncheck_op(case)
    if op != "layer_norm":
        parts.append(f"--op {op}")
    if case.normalized_shape:
        parts.append("--shape " + " ".join(map(str, case.normalized_shape)))
    if case.op == "group_norm":
        parts.append(f"--groups {case.groups}")
    if case.op == "instance_norm":
        parts.append("--affine")
    if case.op == "batch_norm_eval":
        parts.append("--eval")
    if case.op.startswith("batch_norm"):
        parts.append("--running-mean rm.npy --running-var rv.npy")
    parts.append("--weight w.npy")
    if inp.bias is not None:
        parts.append("--bias b.npy")
    parts.append(f"--eps {case.eps:g} --dtype {case.dtype} --expected y.npy --json")
    return " ".join(parts)


def dump(inp: Inputs, row: dict, y: np.ndarray, root: Path, reproduce: str) -> Path:
    """Write ``row``'s input and output under ``root`` (bfloat16 is stored as float32)."""
    name = f"{row['outcome'].replace('_', '-')}_{row['case']}_{row['impl']}"
    folder = root / re.sub(r"[^A-Za-z0-9_.-]", "-", name)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"x": inp.x, "w": inp.weight, "b": inp.bias, "rm": inp.running_mean,
              "rv": inp.running_var, "y": y}  # fmt: skip
    for key, a in arrays.items():
        if a is not None:
            np.save(folder / f"{key}.npy", a)
    kind = "Bug" if row["kind"] == "bug" else "Implementation"
    right = "FAIL (a bug)" if row["kind"] == "bug" else "PASS (a correct implementation)"
    if row["kind"] == "bug" and row["label"] == "semantic":
        right = "FAIL as mismatch (a bug that changes the semantics)"
    said = (
        f"`expected` {'PASS' if row['passed'] else 'FAIL'}, class {row['accuracy_class']}, "
        f"tolerance_used {row['tolerance_used']:.3g}"
        if row["passed"] is not None
        else f"error {row['lncheck_error']}"
    )
    if row.get("explanation"):
        said += f", explanation: {row['explanation']}"
    limit = 10 * row["worst_correct_err"]
    text = f"""# {folder.name}

{kind}: {row["impl"]} ({row["label"]}); {row["describe"]}; row {row["id"]} of the verdict
matrix (`{reproduce} --only {row["id"]}`).

max |y - exact| here {row["err"]:.3g}; 10x the worst correct implementation on this input:
{limit:.3g} ({"distinguishable" if row["distinguishable"] else "not distinguishable"}).

```
{command(inp)}
```

lncheck says: {said}. Right verdict: {right}. Outcome in the matrix: {row["outcome"]}.
"""
    (folder / "README.md").write_text(text)
    return folder

"""fcconv.numpy_ops.conv2d (im2col + one tensordot) against torch's conv2d on the CPU, float32.

    .venv/bin/python benchmarks/numpy_vs_torch.py --write
Goals: fc6-as-conv on a 12x12x512 map within 2x of torch; a 3x3 conv on 56x56x256 within 4x.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from results import median_ms  # noqa: E402

from fcconv import numpy_ops  # noqa: E402

# name, input (N, C, H, W), weight (K, C, kh, kw), padding, goal (numpy time / torch time)
CASES = [
    ("fc6 as 7x7 conv on 12x12x512", (1, 512, 12, 12), (4096, 512, 7, 7), 0, 2.0),
    ("3x3 conv on 56x56x256", (1, 256, 56, 56), (256, 256, 3, 3), 1, 4.0),
]


def blas() -> str:
    try:
        from threadpoolctl import threadpool_info

        return ", ".join(f"{i['internal_api']} {i.get('architecture', '')} "
                         f"({i['num_threads']} threads)" for i in threadpool_info())
    except ImportError:
        return "unknown"


def main() -> list[tuple]:
    rng = np.random.default_rng(0)
    rows = []
    for name, xs, ws, pad, goal in CASES:
        x = rng.standard_normal(xs, dtype=np.float32)
        w = rng.standard_normal(ws, dtype=np.float32)
        xt, wt = torch.from_numpy(x), torch.from_numpy(w)
        ours = numpy_ops.conv2d(x, w, padding=pad)
        ref = F.conv2d(xt, wt, padding=pad).numpy()
        err = float(np.abs(ours - ref).max() / np.abs(ref).max())
        t_np = median_ms(lambda x=x, w=w, pad=pad: numpy_ops.conv2d(x, w, padding=pad))
        with torch.inference_mode():
            t_torch = median_ms(lambda xt=xt, wt=wt, pad=pad: F.conv2d(xt, wt, padding=pad))
        macs = ref.size * ws[1] * ws[2] * ws[3]
        rows.append((name, macs / 1e9, t_np, t_torch, t_np / t_torch, goal, err))
    return rows


def table(rows) -> str:
    lines = ["| case | GMACs | numpy ms | torch ms | numpy / torch | goal | met | max rel. err |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {n} | {g:.2f} | {a:.1f} | {b:.1f} | {r:.2f}x | {goal:.0f}x | "
              f"{'yes' if r <= goal else 'NO'} | {e:.1e} |" for n, g, a, b, r, goal, e in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    rows = main()
    print(table(rows))
    if "--write" in sys.argv:
        from results import git_rev, machine, write_section

        write_section("numpy_vs_torch", "\n".join([
            "## numpy_ops.conv2d vs torch conv2d (CPU, float32)", "",
            f"Machine: {machine()}. BLAS: {blas()}. Commit {git_rev()}. "
            "Command: `.venv/bin/python benchmarks/numpy_vs_torch.py --write` (median of 7).", "",
            table(rows)]))

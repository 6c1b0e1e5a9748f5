"""What makes the crops slower (or faster) per MAC than one dense pass, measured (notebook 06).

    .venv/bin/python benchmarks/crops_per_mac.py            # print the tables
    .venv/bin/python benchmarks/crops_per_mac.py --write    # and put them into RESULTS.md

1. Tiny VGG at 128x128 (289 windows of 64x64, notebook 06's case): the dense pass against the
   crops run B to a batch, for several B, on 1 and 2 threads. For each: the time for all the
   windows (median), the minor page faults of one such run, and the measured ratio beside the
   MAC ratio. Dense pass and crops are timed in rotation, so load on a shared machine hits both.
2. VGG16 at 384x384 (36 windows of 224x224), the crops 16 to a batch as in dense_vs_crops.py,
   one thread: time, nanoseconds per MAC and page faults per block of layers (conv stages up to
   each max-pool, then the head), from fcconv.widgets.efficiency.layer_costs.

MACs come from fcconv.trace. Page faults are this process's minor faults (getrusage): each is a
fresh page of memory the operating system hands over at its first write.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import fcconv  # noqa: E402
from fcconv.widgets.efficiency import layer_costs, minor_page_faults  # noqa: E402


def crops_of(image: torch.Tensor, window: int, jump: int) -> torch.Tensor:
    """(1, C, H, W) -> every window-sized crop at ``jump``: (windows, C, window, window)."""
    crops = image.unfold(2, window, jump).unfold(3, window, jump)
    return crops.permute(0, 2, 3, 1, 4, 5).reshape(-1, image.shape[1], window, window)


def timed(fn) -> tuple[float, int | None]:
    """(ms, minor page faults) of one call of ``fn``."""
    f0, t0 = minor_page_faults(), time.perf_counter()
    fn()
    ms, f1 = 1e3 * (time.perf_counter() - t0), minor_page_faults()
    return ms, None if f0 is None else f1 - f0


@torch.no_grad()
def tiny_batches(batches, threads, repeats: int) -> list[tuple]:
    """Rows (threads, batch, ms for all windows, faults, x dense, MAC ratio) for Tiny VGG at 128."""
    torch.manual_seed(0)
    tiny = fcconv.tiny_vgg().eval()
    fcn = fcconv.convolutionalize(tiny, (3, 64, 64))
    image = torch.randn(1, 3, 128, 128)
    crops = crops_of(image, 64, 4)
    mac_ratio = (len(crops) * fcconv.trace(tiny, (3, 64, 64)).total_macs
                 / fcconv.trace(fcn, (3, 128, 128)).total_macs)
    def in_batches(b):
        return lambda: [tiny(crops[i:i + b]) for i in range(0, len(crops), b)]

    ways = {"dense": lambda: fcn(image), **{b: in_batches(b) for b in batches}}
    rows = []
    for t in threads:
        torch.set_num_threads(t)
        for fn in ways.values():  # warm-up
            fn()
        seen = {k: [] for k in ways}
        for _ in range(repeats):  # in rotation
            for k, fn in ways.items():
                seen[k].append(timed(fn))
        dense = statistics.median(ms for ms, _ in seen["dense"])
        rows.append((t, "dense pass", dense, statistics.median(f or 0 for _, f in seen["dense"]),
                     1.0, 1.0))
        for b in batches:
            ms = statistics.median(ms for ms, _ in seen[b])
            faults = statistics.median(f or 0 for _, f in seen[b])
            rows.append((t, f"crops, {b} a batch", ms, faults, ms / dense, mac_ratio))
    return rows


def flat_vgg16() -> nn.Sequential:
    """VGG16 as one flat Sequential (features, flatten, classifier; the adaptive pool is an
    identity at 224 and left out), so that layer_costs times every layer."""
    vgg = fcconv.vgg16().eval()
    return nn.Sequential(*vgg.features, nn.Flatten(), *vgg.classifier).eval()


def blocks(rows: list[dict]) -> list[dict]:
    """layer_costs rows summed into blocks: each conv stage up to its max-pool, then the head."""
    out, current = [], None
    for row in rows:
        if current is None:
            current = {"names": [], "ms": 0.0, "macs": 0, "faults": 0}
            out.append(current)
        current["names"].append(row["name"])
        current["ms"] += row["ms"]
        current["macs"] += row["macs"]
        current["faults"] = None if row["faults"] is None or current["faults"] is None \
            else current["faults"] + row["faults"]
        if row["kind"] == "MaxPool2d":
            current = None
    return out


def vgg16_blocks(size: int, batch: int, repeats: int) -> list[tuple]:
    """Rows (layers, dense ms, crops ms, dense ns/MAC, crops ns/MAC, dense faults, crops faults),
    the crops scaled to every window from one batch."""
    torch.manual_seed(0)
    model = flat_vgg16()
    fcn = fcconv.convolutionalize(model, (3, 224, 224)).eval()
    image = torch.randn(1, 3, size, size)
    crops = crops_of(image, 224, 32)
    costs = layer_costs({"dense": (fcn, image), "crops": (model, crops[:batch])}, repeats)
    dense, crop = blocks(costs["dense"]), blocks(costs["crops"])
    scale = len(crops) / batch
    rows = []
    for d, c in zip(dense, crop):
        names = f"{c['names'][0]}-{c['names'][-1]}"
        rows.append((names, d["ms"], scale * c["ms"], 1e6 * d["ms"] / max(d["macs"], 1),
                     1e6 * c["ms"] / max(c["macs"], 1), d["faults"],
                     None if c["faults"] is None else scale * c["faults"]))
    return rows


def tiny_table(rows) -> str:
    lines = ["| threads | run | ms for all 289 windows | page faults | x the dense pass | "
             "x in MACs |", "|---|---|---|---|---|---|"]
    lines += [f"| {t} | {run} | {ms:.1f} | {f:,.0f} | {x:.1f}x | {m:.1f}x |"
              for t, run, ms, f, x, m in rows]
    return "\n".join(lines)


def vgg_table(rows, size: int, batch: int) -> str:
    lines = [f"| layers | dense ms | crops ms ({batch} a batch, all windows) | dense ns/MAC | "
             "crops ns/MAC | dense page faults | crops page faults |",
             "|---|---|---|---|---|---|---|"]
    fmt = lambda f: "not counted" if f is None else f"{f:,.0f}"  # noqa: E731
    lines += [f"| {n} | {d:.1f} | {c:.1f} | {dn:.3f} | {cn:.3f} | {fmt(df)} | {fmt(cf)} |"
              for n, d, c, dn, cn, df, cf in rows]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 128, 192, 256, 289])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=5, help="timed runs of each way (median)")
    p.add_argument("--vgg-size", type=int, default=384, help="0 leaves VGG16 out")
    p.add_argument("--vgg-batch", type=int, default=16)
    p.add_argument("--write", action="store_true", help="put the tables into RESULTS.md")
    args = p.parse_args(argv)
    import os

    load = os.getloadavg()[0]
    tiny = tiny_table(tiny_batches(args.batches, args.threads, args.repeats))
    print(tiny)
    parts = ["## What makes the crops slower per MAC: time and page faults, crops vs dense", "",
             "### Tiny VGG at 128x128, 289 windows: the crops' batch size and threads", "", tiny]
    if args.vgg_size:
        vgg = vgg_table(vgg16_blocks(args.vgg_size, args.vgg_batch, max(1, args.repeats // 2)),
                        args.vgg_size, args.vgg_batch)
        print(vgg)
        parts += ["", f"### VGG16 at {args.vgg_size}x{args.vgg_size}, one thread, per block of "
                  "layers", "", vgg]
    if args.write:
        from results import git_rev, machine, write_section

        parts.insert(2, f"Machine: {machine()}. Commit {git_rev()}. Command: "
                        f"`.venv/bin/python benchmarks/crops_per_mac.py "
                        f"{' '.join(argv or sys.argv[1:])}` (load average {load:.1f} at the "
                        "start).\n")
        write_section("crops_per_mac", "\n".join(parts))


if __name__ == "__main__":
    main()

"""One dense pass of the convolutionalized VGG16 against its batched 224x224 crops (stride 32).

    .venv/bin/python benchmarks/dense_vs_crops.py                       # CPU, 384 512 1024
    python benchmarks/dense_vs_crops.py --device cuda --tf32 --write    # adds CUDA rows

For each size it reports, for both ways: time (median), MACs (from fcconv.trace) and peak memory,
then the measured speed-up beside the MAC-predicted one (11.2x at 384, 16.7x at 512, 25.9x at 1024)
and the fraction of the prediction reached (goal: >= 85%). The last column is how far the dense
scores are from the crop scores, ||dense - crops|| / ||crops||: VGG's zero padding makes them
differ (see notebook 05). Its size depends on the weights: with torchvision's init (zero biases)
it is tens of percent; with PyTorch's default init, where the biases dominate, under 1%.

Both sides get the same settings so that the baseline is fair: ``--cudnn-benchmark``,
``--channels-last``, ``--tf32``; ``--cuda-graph`` replays the dense pass from a CUDA graph (the
remedy for launch latency when one small image cannot fill a GPU), and the crops too.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import fcconv  # noqa: E402

WINDOW, JUMP = 224, 32


@dataclass
class Row:
    device: str
    settings: str
    size: int
    windows: int
    dense_gmacs: float
    crops_gmacs: float
    dense_ms: float
    crops_ms: float
    dense_mem_mb: float
    crops_mem_mb: float
    predicted: float
    measured: float
    rel_diff: float

    @property
    def reached(self) -> float:
        return self.measured / self.predicted


# --------------------------------------------------------------------------- memory

def _cpu_peak_reset() -> None:
    """Reset this process's peak-RSS counter (Linux: writing 5 to clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _cpu_rss(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return float("nan")


class PeakMemory:
    """Peak memory (MB) used above the level at entry, on the CPU or one CUDA device."""

    def __init__(self, device: torch.device):
        self.device = device

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            _cpu_peak_reset()
            self.base = _cpu_rss("VmRSS")
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.mb = (torch.cuda.max_memory_allocated() - self.base) / 2**20
        else:
            self.mb = _cpu_rss("VmHWM") - self.base


# --------------------------------------------------------------------------- timing

def timed(fn, device: torch.device, repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in ms, with the device synchronized around each call."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def graphed(fn, example: torch.Tensor):
    """Capture ``fn(example)`` in a CUDA graph; return a replay function (same input buffer)."""
    static = example.clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn(static)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn(static)
    return lambda: (graph.replay(), out)[1]


# --------------------------------------------------------------------------- one size

def crop_batch(image: torch.Tensor) -> torch.Tensor:
    """All 224x224 crops at stride 32 as one batch: (rows*cols, 3, 224, 224)."""
    crops = image.unfold(2, WINDOW, JUMP).unfold(3, WINDOW, JUMP)
    return crops.permute(0, 2, 3, 1, 4, 5).reshape(-1, 3, WINDOW, WINDOW)


@torch.inference_mode()
def measure(size: int, device: torch.device, args, model, fcn) -> Row:
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    image = torch.randn(args.images, 3, size, size, device=device).contiguous(memory_format=fmt)
    windows = ((size - WINDOW) // JUMP + 1) ** 2
    dense_macs = args.images * fcconv.trace(fcn, size).total_macs
    crop_macs = args.images * windows * fcconv.trace(model, WINDOW).total_macs

    def crops_fn(img=image):
        batch = crop_batch(img).contiguous(memory_format=fmt)
        return torch.cat([model(batch[i:i + args.batch]) for i in range(0, len(batch), args.batch)])

    dense_fn = lambda: fcn(image)  # noqa: E731
    if args.cuda_graph and device.type == "cuda":
        dense_fn = graphed(fcn, image)
        if args.images * windows <= args.batch:  # the whole crop pass fits one graph too
            crops_fn = graphed(lambda img: crops_fn(img), image)
    dense_fn(), crops_fn()  # warm up first: cudnn.benchmark's trial runs are not the method's memory
    with PeakMemory(device) as dm:
        dense = dense_fn().float()
    with PeakMemory(device) as cm:
        crops = crops_fn().float()
    dense_scores = dense.permute(0, 2, 3, 1).reshape(-1, 1000)  # (image, row, col) order, as crops
    diff = ((dense_scores - crops).norm() / crops.norm()).item()  # relative L2 over all scores
    dense_ms = timed(dense_fn, device, args.repeats)
    crops_ms = timed(crops_fn, device, max(1, args.repeats // 3) if size >= 1024 else args.repeats)
    return Row(device.type, settings_name(args), size, windows, dense_macs / 1e9, crop_macs / 1e9,
               dense_ms, crops_ms, dm.mb, cm.mb, crop_macs / dense_macs, crops_ms / dense_ms, diff)


def settings_name(args) -> str:
    parts = ["torch defaults" if args.torch_defaults else "tf32" if args.tf32 else "fp32"]
    parts += [f"{args.images} images"] if args.images > 1 else []
    parts += [name for name, on in (("cudnn.benchmark", args.cudnn_benchmark),
                                    ("channels_last", args.channels_last),
                                    ("cuda-graph", args.cuda_graph)) if on]
    return ", ".join(parts)


def table(rows: list[Row]) -> str:
    head = ("| device | settings | input | windows | dense GMACs | crops GMACs | dense ms | crops ms "
            "| dense MB | crops MB | predicted | measured | reached | dense vs crops |")
    lines = [head, "|" + "---|" * 14]
    for r in rows:
        lines.append(f"| {r.device} | {r.settings} | {r.size} | {r.windows} | {r.dense_gmacs:.1f} "
                     f"| {r.crops_gmacs:.1f} | {r.dense_ms:.1f} | {r.crops_ms:.1f} "
                     f"| {r.dense_mem_mb:.0f} | {r.crops_mem_mb:.0f} | {r.predicted:.1f}x "
                     f"| {r.measured:.1f}x | {100 * r.reached:.0f}% | {r.rel_diff:.2%} |")
    return "\n".join(lines)


def main(argv=None) -> list[Row]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--sizes", type=int, nargs="+", default=[384, 512, 1024])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch", type=int, default=16, help="crops per forward pass")
    p.add_argument("--images", type=int, default=1, help="images per dense pass (and their crops)")
    p.add_argument("--tf32", action="store_true", help="TF32 for convs and matmuls")
    p.add_argument("--torch-defaults", action="store_true",
                   help="leave the TF32 flags as PyTorch sets them (cuDNN convs may use TF32)")
    p.add_argument("--cudnn-benchmark", action="store_true")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--cuda-graph", action="store_true")
    p.add_argument("--json", help="append the rows to this JSON-lines file")
    p.add_argument("--write", action="store_true", help="put the table into RESULTS.md")
    p.add_argument("--from-json", help="write RESULTS.md from rows measured elsewhere")
    p.add_argument("--machine", help="with --from-json: the machine that measured them")
    args = p.parse_args(argv)
    if args.from_json:
        rows = [Row(**json.loads(line)) for line in open(args.from_json) if line.strip()]
        write(rows, args.machine or "unknown", f"(rows from {args.from_json})")
        return rows
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    if not args.torch_defaults:  # PyTorch's own default lets cuDNN convs use TF32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = args.tf32
    torch.manual_seed(0)
    model = fcconv.vgg16().eval()
    fcn = fcconv.convolutionalize(model, (3, WINDOW, WINDOW))
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    model, fcn = (m.to(device, memory_format=fmt) for m in (model, fcn))
    rows = []
    for size in args.sizes:
        row = measure(size, device, args, model, fcn)
        rows.append(row)
        print(table([row]).splitlines()[-1], flush=True)
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(asdict(row)) + "\n")
    if args.write:
        from results import machine

        write(rows, f"{machine()} (batch {args.batch} crops, median of {args.repeats})",
              "python benchmarks/dense_vs_crops.py " + " ".join(argv or sys.argv[1:]))
    return rows


def write(rows: list[Row], machine_line: str, command: str) -> None:
    """One RESULTS.md section per device kind, so CPU and GPU runs don't overwrite each other."""
    from results import git_rev, write_section

    device = rows[0].device
    write_section(f"dense_vs_crops_{device}", "\n".join([
        f"## Dense pass vs 224x224 crops, VGG16 random weights, {device}", "",
        f"Machine: {machine_line}. Commit {git_rev()}. Command: `{command}`.", "",
        table(rows)]))


if __name__ == "__main__":
    print(table(main()))

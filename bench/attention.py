"""Attention cost: one dense causal attention layer against one sparse_gpt layer, as the context grows.

Usage: .venv/bin/python -m bench.attention [--device cpu|cuda] [--sizes 1024,2048,4096,8192] [--repeats 3]
                                           [--block 64] [--pattern strided|fixed] [--summary 4]
                                           [--threads 2] [--plot bench/results/attention.png]

Steps:
1. Build both layers at the model's shape (batch 1, 8 heads, d_model 256, the same qkv and output
   projections): dense = ``F.scaled_dot_product_attention(is_causal=True)``, PyTorch's best kernel for the
   device (flash / memory-efficient on CUDA, the flash-style CPU kernel on CPU); sparse =
   ``SparseCausalSelfAttention`` with attn_impl "auto" (the active-blocks path on CPU, flex_attention on
   CUDA).
2. For each n, time forward + backward (a random upstream gradient) after one warm-up pass (which also
   compiles flex on CUDA); the figure is the fastest of --repeats passes, the one least disturbed by other
   processes. Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` above what was allocated before the
   pass; on CPU, where no allocator counts, every (layer, n) runs in a fresh subprocess and reports how far
   the warm-up pass raised the process's peak resident set (``ru_maxrss``) above its level after building
   the inputs: an honest figure that includes allocator overhead. CPU workers run with
   OMP_WAIT_POLICY=PASSIVE unless it is set (see measure_in_subprocess).
3. Print a table of both with the dense/sparse ratio, the scaling exponent of each (least-squares slope of
   log time against log n), the sparse/dense time ratio at the largest n, and save a log-log plot.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from maia.models.sparse_gpt import SparseCausalSelfAttention, SparseGPTConfig

N_EMBD, N_HEAD = 256, 8  # the model's width and heads (head_dim 32)


class DenseCausalSelfAttention(nn.Module):
    """gpt.py's attention layer without dropout: full causal attention through SDPA's fused kernels."""

    def __init__(self):
        super().__init__()
        self.c_attn = nn.Linear(N_EMBD, 3 * N_EMBD, bias=False)
        self.c_proj = nn.Linear(N_EMBD, N_EMBD, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = (t.view(B, T, N_HEAD, C // N_HEAD).transpose(1, 2) for t in self.c_attn(x).split(C, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hd)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


def build(kind: str, n: int, args, device: str) -> nn.Module:
    if kind == "dense":
        return DenseCausalSelfAttention().to(device)
    cfg = SparseGPTConfig(
        vocab_size=1, block_size=n, n_embd=N_EMBD, n_head=N_HEAD, dropout=0.0,
        pattern=args.pattern, block=args.block, summary=args.summary, attn_impl="auto",
    )  # fmt: skip
    return SparseCausalSelfAttention(cfg).to(device)


def measure(kind: str, n: int, args, device: str) -> dict:
    """Seconds per forward + backward (fastest of args.repeats) and peak extra memory in MiB."""
    torch.manual_seed(0)
    layer = build(kind, n, args, device)
    x = torch.randn(1, n, N_EMBD, device=device, requires_grad=True)
    grad = torch.randn(1, n, N_EMBD, device=device)

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    def one_pass():
        layer(x).backward(grad)
        x.grad = None
        layer.zero_grad(set_to_none=True)

    if device == "cuda":
        one_pass()  # compile flex, build the BlockMask, warm the caches
        sync()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        one_pass()
        sync()
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        one_pass()
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
    times = []
    for _ in range(args.repeats):
        sync()
        t0 = time.perf_counter()
        one_pass()
        sync()
        times.append(time.perf_counter() - t0)
    return {"kind": kind, "n": n, "seconds": min(times), "peak_mib": peak}


def measure_in_subprocess(kind: str, n: int, args) -> dict:
    """CPU: a fresh interpreter per point, so that ru_maxrss sees only this layer's peak."""
    cmd = [sys.executable, __file__, "--worker", f"{kind}:{n}", "--device", "cpu", "--repeats", str(args.repeats),
           "--block", str(args.block), "--pattern", args.pattern, "--summary", str(args.summary),
           "--threads", str(args.threads)]  # fmt: skip
    # Waiting OpenMP threads sleep instead of spinning: on a shared machine a spinning thread holds up each
    # of the sparse path's many small ops for a scheduler time slice, and the figures then measure the
    # neighbours rather than the kernels (x10 on a loaded 2-core box). Applied to both layers alike.
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def slope(ns, ts) -> float:
    """Least-squares slope of log t against log n: t ~ n^slope."""
    xs, ys = [math.log(n) for n in ns], [math.log(t) for t in ts]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


def plot(rows, exps, args, device, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10, 4))
    ns = [r["n"] for r in rows]
    for kind, label in [("dense", "dense SDPA (causal)"), ("sparse", f"sparse {args.pattern}, L={args.block}")]:
        ax_t.plot(ns, [r[kind]["seconds"] * 1e3 for r in rows], "o-", label=f"{label}: n^{exps[kind]:.2f}")
        ax_m.plot(ns, [max(r[kind]["peak_mib"], 1e-3) for r in rows], "o-", label=label)
    for ax, ylabel in [(ax_t, "forward + backward (ms)"), (ax_m, "peak extra memory (MiB)")]:
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length n")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(f"one attention layer (B=1, 8 heads, d=256) on {device}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    ap.add_argument("--sizes", help="comma-separated n (default 1024..8192 on CPU, ..16384 on CUDA)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--block", type=int, default=64, help="L, the sparse block / stride")
    ap.add_argument("--pattern", default="strided", choices=["strided", "fixed"])
    ap.add_argument("--summary", type=int, default=4, help="c, summary positions per block (fixed)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--plot", default="bench/results/attention.png")
    ap.add_argument("--worker", help=argparse.SUPPRESS)  # internal: "kind:n", one CPU measurement as JSON
    args = ap.parse_args(argv)
    if args.device == "cpu":
        torch.set_num_threads(args.threads)

    if args.worker:
        kind, n = args.worker.split(":")
        print(json.dumps(measure(kind, int(n), args, "cpu")))
        return 0

    default = "1024,2048,4096,8192" + (",16384" if args.device == "cuda" else "")
    sizes = [int(s) for s in (args.sizes or default).split(",")]
    impl = "flex_attention" if args.device == "cuda" else "active blocks"
    dev_name = torch.cuda.get_device_name() if args.device == "cuda" else f"{platform.processor() or 'cpu'}"
    print(f"torch {torch.__version__} on {args.device} ({dev_name}), threads {torch.get_num_threads()}; "
          f"sparse = {args.pattern}, L={args.block}" + (f", c={args.summary}" if args.pattern == "fixed" else "")
          + f", {impl}; fastest of {args.repeats}")  # fmt: skip

    rows = []
    for n in tqdm(sizes, desc="sizes", unit="n"):
        row = {"n": n}
        for kind in ("dense", "sparse"):
            row[kind] = (
                measure(kind, n, args, "cuda") if args.device == "cuda" else measure_in_subprocess(kind, n, args)
            )
        rows.append(row)

    print(
        f"{'n':>6} | {'dense ms':>9} | {'sparse ms':>9} | {'dense/sparse':>12} | {'dense MiB':>9} | {'sparse MiB':>10}"
    )
    print("-" * 72)
    for r in rows:
        d, s = r["dense"], r["sparse"]
        print(f"{r['n']:>6} | {d['seconds'] * 1e3:>9.1f} | {s['seconds'] * 1e3:>9.1f} | "
              f"{d['seconds'] / s['seconds']:>11.2f}x | {d['peak_mib']:>9.1f} | {s['peak_mib']:>10.1f}")  # fmt: skip
    exps = {k: slope(sizes, [r[k]["seconds"] for r in rows]) for k in ("dense", "sparse")}
    last = rows[-1]
    print(f"scaling exponent (time ~ n^k): dense {exps['dense']:.2f}, sparse {exps['sparse']:.2f}")
    print(f"sparse/dense time at n={last['n']}: {last['sparse']['seconds'] / last['dense']['seconds']:.2f}")
    plot(rows, exps, args, args.device, Path(args.plot))
    print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

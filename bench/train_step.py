"""Which CPU training step to run: maia's GPT step in float32 and bf16 autocast, under torch.compile, with
1 or 2 threads and several batch shapes, each against the eager bf16 step the first shipped models were
trained with, and against eager float32 (the peers here are our own baselines, same machine, same run).
bf16 autocast only pays on CPUs with AVX-512 BF16 or AMX; elsewhere it is emulated and far slower.

Usage: .venv/bin/python -m bench.train_step [--rounds 3] [--steps 2] [--variants all|quick] [--json OUT]

Steps:
1. Build maia's GPT (training/configs/gpt.toml's shape) once per variant: (batch, seq, threads, compiled).
2. Warm up (compilation happens here and is not timed), then time ``rounds`` rounds of ``steps`` steps of
   forward + float32 cross-entropy + backward + fused AdamW under bf16 autocast, as training/train.py runs.
3. Print tokens/s per variant and its ratios to eager bf16 and to eager float32 (2 threads, 16 x 512;
   the bf16 baseline runs 4 x 512 when emulated, or its rounds would take minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from bench.training import build, default_vocab_size, make_step

# (name, batch, seq, threads, compiled, bf16)
VARIANTS = {
    "quick": [("eager bf16", 16, 512, 2, False, True), ("eager fp32", 16, 512, 2, False, False),
              ("compiled fp32", 16, 512, 2, True, False), ("eager fp32", 8, 1024, 2, False, False),
              ("compiled fp32", 8, 1024, 2, True, False), ("eager fp32, 1 thread", 16, 512, 1, False, False)],
}
VARIANTS["all"] = VARIANTS["quick"] + [("compiled bf16", 16, 512, 2, True, True), ("eager fp32", 32, 256, 2, False, False),
                                       ("eager fp32", 32, 512, 2, False, False)]


def native_bf16() -> bool:
    """Whether the CPU computes bf16 natively (AVX-512 BF16 or AMX); else autocast emulates it."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def time_variant(batch, seq, threads, compiled, bf16, rounds, steps, V) -> list[float]:
    from contextlib import nullcontext

    torch.set_num_threads(threads)
    model, opt = build("maia", V, seq, 0.1, "cpu")
    model.train()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, V, (batch, seq), generator=g), torch.randint(0, V, (batch, seq), generator=g)
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()
    step = make_step(model, opt, x, y, ctx, False, compiled)
    for _ in range(2):
        step()
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        out.append(time.perf_counter() - t0)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--variants", choices=sorted(VARIANTS), default="quick")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    V = default_vocab_size()
    native = native_bf16()
    print(f"maia GPT training step on {platform.machine()} ({os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, "
          f"native bf16: {native}), torch {torch.__version__}, vocab {V}; median of {a.rounds} rounds of {a.steps} steps")
    print(f"{'variant':<24} {'batch x seq':>12} {'threads':>8} {'tokens/s':>10} {'vs eager bf16':>14} {'vs eager fp32':>14}")
    rows = []
    for name, batch, seq, threads, compiled, bf16 in VARIANTS[a.variants]:
        if bf16 and not native:
            batch = min(batch, 4)
        rounds, steps = (1, 1) if bf16 and not native else (a.rounds, a.steps)
        ts = time_variant(batch, seq, threads, compiled, bf16, rounds, steps, V)
        rate = batch * seq * steps / statistics.median(ts)
        rows.append({"variant": name, "batch": batch, "seq": seq, "threads": threads, "compiled": compiled,
                     "bf16": bf16, "tokens_per_s": rate})
        bf, fp = rows[0]["tokens_per_s"], next((r["tokens_per_s"] for r in rows if r["variant"] == "eager fp32"), rate)
        print(f"{name:<24} {f'{batch} x {seq}':>12} {threads:>8} {rate:>10,.0f} {rate / bf:>13.2f}x {rate / fp:>13.2f}x",
              flush=True)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Which CPU training step to run: maia's GPT step under torch.compile, thread counts and batch shapes,
each against today's eager bf16 step (the peer here is our own baseline, on the same machine, same run).

Usage: .venv/bin/python bench/train_step.py [--rounds 3] [--steps 2] [--variants all|quick] [--json OUT]

Steps:
1. Build maia's GPT (training/configs/gpt.toml's shape) once per variant: (batch, seq, threads, compiled).
2. Warm up (compilation happens here and is not timed), then time ``rounds`` rounds of ``steps`` steps of
   forward + float32 cross-entropy + backward + fused AdamW under bf16 autocast, as training/train.py runs.
3. Print tokens/s per variant and its ratio to the baseline, eager bf16 with 2 threads at 16 x 512.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.training import build, default_vocab_size, make_step

BASELINE = ("eager bf16", 16, 512, 2, False)
VARIANTS = {
    "quick": [BASELINE, ("compiled bf16", 16, 512, 2, True), ("eager bf16", 8, 1024, 2, False),
              ("compiled bf16", 8, 1024, 2, True), ("eager bf16, 1 thread", 16, 512, 1, False)],
}
VARIANTS["all"] = VARIANTS["quick"] + [("eager bf16", 32, 256, 2, False), ("eager bf16", 32, 512, 2, False),
                                       ("compiled bf16, 1 thread", 16, 512, 1, True)]


def time_variant(batch, seq, threads, compiled, rounds, steps, V) -> list[float]:
    torch.set_num_threads(threads)
    model, opt = build("maia", V, seq, 0.1, "cpu")
    model.train()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, V, (batch, seq), generator=g), torch.randint(0, V, (batch, seq), generator=g)
    step = make_step(model, opt, x, y, torch.autocast("cpu", dtype=torch.bfloat16), False, compiled)
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
    print(f"maia GPT training step on {platform.machine()} ({os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}), "
          f"torch {torch.__version__}, vocab {V}; median of {a.rounds} rounds of {a.steps} steps")
    print(f"{'variant':<26} {'batch x seq':>12} {'threads':>8} {'tokens/s':>10} {'vs eager bf16 16x512':>21}")
    rows = []
    for name, batch, seq, threads, compiled in VARIANTS[a.variants]:
        ts = time_variant(batch, seq, threads, compiled, a.rounds, a.steps, V)
        rate = batch * seq * a.steps / statistics.median(ts)
        rows.append({"variant": name, "batch": batch, "seq": seq, "threads": threads, "compiled": compiled,
                     "tokens_per_s": rate})
        base = rows[0]["tokens_per_s"]
        print(f"{name:<26} {f'{batch} x {seq}':>12} {threads:>8} {rate:>10,.0f} {rate / base:>20.2f}x", flush=True)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

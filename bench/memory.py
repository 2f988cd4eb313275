"""Resident memory of the playground's requests run from several threads, as a server runs them: as glibc's
malloc leaves it, with ``maia.memory.trim`` after each request, and with ``limit_arenas(2)`` too (what the
server does; maia/memory.py).

Usage: .venv/bin/python -m bench.memory [--threads 4] [--requests 48] [--model piano]

Each variant runs in a fresh process (the arena limit only holds for threads made after it): three requests
one after another to warm up (model, music21, Verovio, FluidSynth), then ``--requests`` requests from a pool
of ``--threads`` threads (streamed Lacrimosa continuations, 128 tokens from a composer, and regenerated
beats 4-8 when the model fills in the middle). It prints the resident memory after the warm-up, after each
round of the pool and at the end, and the growth.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from bench.appserver import ROOT

VARIANTS = {"as is": {}, "trim": {"trim": True}, "trim + 2 arenas": {"trim": True, "arenas": 2}}


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(model: str, threads: int, requests: int, trim: bool = False, arenas: int | None = None) -> dict:
    """One variant, in this process: {"warm": MB, "rounds": [MB, ...], "end": MB}."""
    from maia import memory

    if arenas:
        memory.limit_arenas(arenas)
    import torch

    torch.set_num_threads(1)
    from maia import playground
    from maia.checkpoint import models_root, read_vocab

    lacrimosa = ROOT / "assets" / "prompts" / "lacrimosa.mid"
    fim = read_vocab(models_root() / model).fim
    original_trim = memory.trim
    memory.trim = original_trim if trim else (lambda: False)  # the playground calls it after each request

    def one(i: int) -> None:
        if fim and i % 3 == 2:
            updates = playground.regenerate(lacrimosa, 4, 8, "unknown", model, 5, 1.0, i)
        else:
            updates = playground.stream(lacrimosa if i % 3 else None, "unknown", model, 128, 5, 1.0, i, 1)
        for _ in updates:
            pass

    for i in range(3):
        one(i)
    out = {"warm": rss_mb(), "rounds": []}
    with ThreadPoolExecutor(threads) as pool:
        for k in range(0, requests, 2 * threads):
            list(pool.map(one, range(k, min(requests, k + 2 * threads))))
            out["rounds"].append(rss_mb())
    out["end"] = rss_mb()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--requests", type=int, default=48)
    ap.add_argument("--model", default="piano", help="an installed model (assets/models or MAIA_MODELS_DIR)")
    ap.add_argument("--child", help=argparse.SUPPRESS)  # a variant's settings, as JSON
    a = ap.parse_args(argv)
    if a.child:
        print(json.dumps(child(a.model, a.threads, a.requests, **json.loads(a.child))))
        return 0
    print(f"# {a.requests} requests of model {a.model} from {a.threads} threads, after 3 to warm up; "
          f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}")
    print(f"{'variant':<16} {'warm MB':>8} {'per round (MB)':<40} {'end MB':>7} {'growth':>7}")
    for name, settings in VARIANTS.items():
        run = subprocess.run([sys.executable, "-m", "bench.memory", "--model", a.model, "--threads", str(a.threads),
                              "--requests", str(a.requests), "--child", json.dumps(settings)],
                             cwd=ROOT, capture_output=True, text=True, check=True)
        r = json.loads(run.stdout.strip().splitlines()[-1])
        rounds = " ".join(f"{m:.0f}" for m in r["rounds"])
        print(f"{name:<16} {r['warm']:>8.0f} {rounds:<40} {r['end']:>7.0f} {r['end'] / r['warm'] - 1:>+7.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

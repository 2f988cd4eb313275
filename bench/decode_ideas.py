"""What each decoding idea gave: maia.generate's tokens/s at several git revisions, against Hugging Face's
GPT2LMHeadModel.generate of the same shape, timed in turns in one process so that a shared machine's load
falls on every revision alike.

Usage: .venv/bin/python -m bench.decode_ideas [--threads 2] [--tokens 256] [--rounds 5] REV [REV ...]
       .venv/bin/python -m bench.decode_ideas --same REV [REV ...]   # the shipped piano GPT's samples, per revision
       e.g. REV = 0302ad7 (before) ... HEAD; each as "rev" or "rev=label"

Steps:
1. For each revision, `git archive` its maia/ into a temporary folder and import it there (the modules of one
   revision keep their own globals, so the revisions live side by side in this process).
2. Build each revision's GPT at bench.generate's shape (6 layers, 8 heads, d=256, d_ff=1024, window 1024) with
   the same random weights (rounded to float16 values, as a shipped checkpoint's), and the HF GPT-2 of that shape.
3. Round after round, time each revision and HF: from <composer> <start>, --tokens new tokens, top-k 5, 1 stream
   and 4 (one batch of 4), guards on as by default; keep the fastest of the rounds.
4. Print tokens/s per revision, 1 and 4 streams, and the ratio to HF generate; and the operators each revision
   runs per token (torch profiler events, 1 and 4 streams): a count that the machine's load does not change.
With --same instead: a digest of the ids that each revision samples with the shipped piano GPT (no prompt and
the Lacrimosa, which slides the window; seeds 0 and 1; 1 and 4 variations): equal digests, the same music.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

import torch
from tqdm import tqdm

from bench.generate import COMPOSERS, as_shipped


def load_revision(rev: str, root: str) -> dict:
    """maia at git revision ``rev``, imported from a copy under ``root``: the few names the timing needs."""
    folder = os.path.join(root, rev.replace("/", "_"))
    os.makedirs(folder)
    archive = subprocess.run(["git", "archive", "--format=tar", rev, "maia"], check=True, capture_output=True).stdout
    with tempfile.TemporaryFile() as f:
        f.write(archive)
        f.seek(0)
        with tarfile.open(fileobj=f) as tar:
            tar.extractall(folder, filter="data")
    for name in [m for m in sys.modules if m == "maia" or m.startswith("maia.")]:
        del sys.modules[name]  # import this revision's maia afresh
    sys.path.insert(0, folder)
    try:
        names = ("generate", "models", "vocab", "checkpoint", "encoding")
        return {name: importlib.import_module(f"maia.{name}") for name in names}
    finally:
        sys.path.remove(folder)


def same_music(mods: dict, tokens: int = 300) -> str:
    """A digest of what this revision samples with the shipped piano GPT."""
    model, vocab, _ = mods["checkpoint"].load_model("assets/models/piano")
    g = mods["generate"]
    out = []
    for piece in (None, mods["encoding"].read("assets/prompts/lacrimosa.mid", vocab.config)):
        prompt = g.build_prompt(vocab, "unknown", piece)
        for seed in (0, 1):
            for B in (1, 4):
                out.append(g.generate_ids(model, prompt.ids, g.SamplingConfig(max_new_tokens=tokens, seed=seed,
                                                                              variations=B), vocab))
    n = sum(len(row) for rows in out for row in rows)
    return f"{hashlib.sha256(json.dumps(out).encode()).hexdigest()[:16]} ({n} ids)"


def operators_per_token(fn, tokens: int) -> float:
    """Profiler events (aten operators, nested ones included) per new token of one call of ``fn``."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return sum(e.count for e in prof.key_averages()) / tokens


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("revs", nargs="+", help='git revisions, each "rev" or "rev=label"')
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--same", action="store_true", help="instead: a digest of each revision's samples")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.same:
        root = tempfile.mkdtemp()
        for rev in a.revs:
            rev, label = rev.split("=", 1)[0], rev.split("=", 1)[-1]
            print(f"{label:<28} {same_music(load_revision(rev, root))}", flush=True)
        shutil.rmtree(root)
        return 0

    # 1-2. the revisions and their models, one set of weights
    revs = [(r.split("=", 1)[0], r.split("=", 1)[-1]) for r in a.revs]
    runs = {}
    state = None
    root = tempfile.mkdtemp()  # kept until the end: a module may import lazily from its revision's folder
    for rev, label in revs:
        mods = load_revision(rev, root)
        vocab = mods["vocab"].Vocab(composers=COMPOSERS)
        model = mods["models"].GPT(mods["models"].GPTConfig(vocab_size=len(vocab), block_size=1024, n_layer=6,
                                                            n_head=8, n_embd=256, d_ff=1024)).eval()
        if state is None:  # float16 values, as a shipped checkpoint's
            state = as_shipped(model).state_dict()
        model.load_state_dict(state)
        g = mods["generate"]
        start = g.build_prompt(vocab, "bach").ids
        for B in (1, 4):
            cfg = g.SamplingConfig(max_new_tokens=a.tokens, min_new_tokens=a.tokens, top_k=5, seed=0, variations=B)
            runs[label, B] = (lambda g=g, m=model, s=start, c=cfg, v=vocab: g.generate_ids(m, s, c, v))
    from transformers import GPT2Config, GPT2LMHeadModel

    V = len(vocab)
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=V, n_positions=1024, n_embd=256, n_layer=6, n_head=8, n_inner=1024,
                                    bos_token_id=vocab.start_id, eos_token_id=vocab.end_id)).eval()
    for B in (1, 4):
        ids = torch.tensor([start] * B)

        def hf_run(ids=ids):
            with torch.inference_mode():
                hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=a.tokens, min_new_tokens=a.tokens,
                            do_sample=True, top_k=5, use_cache=True, pad_token_id=vocab.pad_id)
        runs["HF generate", B] = hf_run

    # 3. rounds, every run once per round
    best = dict.fromkeys(runs, float("inf"))
    for fn in runs.values():
        fn()  # warm-up
    for _ in tqdm(range(a.rounds), desc="rounds", leave=False):
        for key, fn in runs.items():
            t = time.perf_counter()
            fn()
            best[key] = min(best[key], time.perf_counter() - t)

    ops = {key: operators_per_token(fn, key[1] * a.tokens) * key[1] for key, fn in runs.items()}  # per step
    shutil.rmtree(root)

    # 4. the table
    print(f"# CPU, torch {torch.__version__}, {a.threads} threads, {platform.processor() or platform.machine()}, "
          f"load average {os.getloadavg()[0]:.1f}; {a.tokens} new tokens, top-k 5; fastest of {a.rounds} rounds")
    print(f"{'revision':<28} {'1 stream tok/s':>15} {'vs HF':>7} {'4 streams tok/s':>16} {'vs HF':>7} "
          f"{'ops/step, 1 & 4 streams':>25}")
    tps = {(k, B): B * a.tokens / t for (k, B), t in best.items()}
    for label in [lab for _, lab in revs] + ["HF generate"]:
        one, four = tps[label, 1], tps[label, 4]
        print(f"{label:<28} {one:>15.1f} {one / tps['HF generate', 1]:>6.2f}x {four:>16.1f} "
              f"{four / tps['HF generate', 4]:>6.2f}x {ops[label, 1]:>12.0f} {ops[label, 4]:>12.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

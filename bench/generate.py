"""Sampling speed on CPU: maia.generate (KV cache) against a full recompute per token and against Hugging
Face's GPT2LMHeadModel.generate, at the GPT's shape (6 layers, 8 heads, d=256, d_ff=1024, ~260 tokens).

Usage: .venv/bin/python -m bench.generate [--threads 2] [--tokens 512] [--slow-tokens 32] [--repeats 3]
       .venv/bin/python -m bench.generate --threads 2 --realtime   # the largest shape at >= 3x real time
                                                                   # (141 tokens/s: 3 x the corpus's 90th percentile)

Steps:
1. Build our GPT (random init, its weights rounded to float16 values as a shipped checkpoint's are, so that
   the one-token path takes fbgemm's fp16 GEMM as it does for the shipped models) with a 1024-token window, and a
   Hugging Face GPT-2 of the same shape (n_positions 1024; transformers is a benchmark-only dependency).
2. Time, after a warm-up, the fastest of --repeats runs (the one least disturbed by other processes):
   a. from <composer> <start>, --tokens new tokens, 1 stream and 4 variations (one batch of 4): ours with
      its KV cache, and HF generate(use_cache=True, do_sample=True, top_k=5);
      and ours with the collapse guards (maia/guards.py, on by default) against ours without them;
   b. continuing a prompt so that the context spans ~512 and ~1024 tokens, --slow-tokens new tokens: ours
      with the cache against ours recomputing the whole window for every token (use_cache=False), counted
      from the first token on (the cache's one-time prime of the prompt is printed apart).
3. Print tokens/s side by side with the ratios and the goals (>= 2x HF generate with 1 stream, >= 1.5x with 4,
   >= 5x no cache at 1024).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import torch
from tqdm import tqdm

from maia.generate import SamplingConfig, build_prompt, generate, generate_ids
from maia.models import GPT, GPTConfig
from maia.vocab import Vocab

COMPOSERS = ("bach", "beethoven", "chopin", "haydn", "joplin", "monteverdi", "mozart", "palestrina", "schubert",
             "schumann", "handel", "trecento", "ciconia", "josquin", "luca", "weber", "corelli", "verdi")


def fastest(fn, repeats: int) -> float:
    """Seconds of the fastest of `repeats` calls, after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def steady(make_stream, repeats: int) -> tuple[float, float]:
    """(seconds to the first token, seconds for all the others) of the fastest of `repeats` streams."""
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        t = time.perf_counter()
        stream = make_stream()
        next(stream)
        first = time.perf_counter() - t
        for _ in stream:
            pass
        best = min(best, (first, time.perf_counter() - t - first), key=lambda x: x[1])
    return best


# Real time, in tokens: the piano corpus plays ~27 notewise tokens per second of music at the median and ~47 at the
# 90th percentile; sampling one stream at 3x the 90th percentile leaves room for the page's other work.
def as_shipped(model):
    """``model`` with its weights rounded to float16 values, as a shipped checkpoint (maia.checkpoint stores
    float16) loads them: the one-token path then takes fbgemm's fp16 GEMM (maia/models/gpt.py), as it does for
    the shipped models. The speed does not depend on the values otherwise."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
    return model


MUSIC_TOKENS_PER_SECOND = 47
REALTIME_BAR = 3 * MUSIC_TOKENS_PER_SECOND  # 141 tokens/s, one stream


def realtime_shapes(vocab: Vocab, context: int = 512, tokens: int = 64, repeats: int = 2) -> None:
    """Sampling speed of random-weight GPTs of growing shape through ``maia.generate`` (one stream, default
    sampling and guards), continuing a ``context``-token prompt, per token after the first; against the bar."""
    print(f"bar: {REALTIME_BAR} tokens/s, one stream = 3 x {MUSIC_TOKENS_PER_SECOND} tokens per second of music "
          f"(the piano corpus's 90th percentile; median ~27)")
    print(f"{'layers x d_model':<18} {'params':>8} {'tok/s':>8} {'x bar':>7}")
    rng = torch.Generator().manual_seed(0)
    body = torch.randint(vocab.wait_offset + 1, vocab.composer_offset, (context,), generator=rng).tolist()
    prompt = [*build_prompt(vocab, "bach").ids, *body][:context]
    cfg = SamplingConfig(max_new_tokens=tokens, min_new_tokens=tokens, seed=0)
    largest = None
    for n_layer, d in ((6, 256), (8, 384), (8, 512), (12, 512), (12, 768), (16, 1024)):
        m = as_shipped(GPT(GPTConfig(vocab_size=len(vocab), block_size=1024, n_layer=n_layer, n_head=d // 32,
                                     n_embd=d, d_ff=4 * d)).eval())
        _, t = steady(lambda m=m: generate(m, prompt, cfg, vocab), repeats)
        tps = (tokens - 1) / t
        if tps >= REALTIME_BAR:
            largest = f"{n_layer} x {d}"
        print(f"{n_layer} x {d:<13} {m.num_params() / 1e6:>7.1f}M {tps:>8.1f} {tps / REALTIME_BAR:>6.2f}x")
    print(f"largest shape at >= {REALTIME_BAR} tokens/s: {largest or 'none'}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=512, help="new tokens per stream in the cache-vs-HF runs")
    ap.add_argument("--slow-tokens", type=int, default=32, help="new tokens in the no-cache runs (slow)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--realtime", action="store_true",
                    help="instead: the largest GPT shape that samples at >= 3x real time (141 tok/s; random weights)")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.realtime:
        print(f"# CPU, torch {torch.__version__}, {a.threads} threads, {platform.processor() or platform.machine()}, "
              f"load average {os.getloadavg()[0]:.1f}; fastest of {a.repeats} runs")
        realtime_shapes(Vocab(composers=COMPOSERS), repeats=a.repeats)
        return 0

    # 1. the two models, same shape
    vocab = Vocab(composers=COMPOSERS)
    V = len(vocab)
    ours = as_shipped(GPT(GPTConfig(vocab_size=V, block_size=1024, n_layer=6, n_head=8, n_embd=256, d_ff=1024)).eval())
    from transformers import GPT2Config, GPT2LMHeadModel

    hf = GPT2LMHeadModel(GPT2Config(vocab_size=V, n_positions=1024, n_embd=256, n_layer=6, n_head=8, n_inner=1024,
                                    bos_token_id=vocab.start_id, eos_token_id=vocab.end_id)).eval()
    print(f"# CPU, torch {torch.__version__}, {a.threads} threads, {platform.processor() or platform.machine()}, "
          f"load average {os.getloadavg()[0]:.1f}; vocab {V}; ours {ours.num_params() / 1e6:.2f}M params, "
          f"HF GPT-2 {sum(p.numel() for p in hf.parameters()) / 1e6:.2f}M; fastest of {a.repeats} runs")

    start = build_prompt(vocab, "bach").ids
    n = a.tokens

    def ours_run(prompt, tokens, variations=1, use_cache=True, stream=False, guards=True):
        off = {} if guards else {"max_hold_beats": None, "max_loop_beats": None}  # maia/guards.py, on by default
        cfg = SamplingConfig(max_new_tokens=tokens, min_new_tokens=tokens, top_k=5, seed=0, variations=variations,
                             use_cache=use_cache, **off)
        if stream:
            return lambda: generate(ours, prompt, cfg, vocab)
        return lambda: generate_ids(ours, prompt, cfg, vocab)

    def hf_run(tokens, variations=1):
        ids = torch.tensor([start] * variations)  # (B, 2)
        mask = torch.ones_like(ids)

        def run():
            with torch.inference_mode():
                hf.generate(ids, attention_mask=mask, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=True,
                            top_k=5, use_cache=True, pad_token_id=vocab.pad_id)
        return run

    # 2a. from scratch: ours with its cache against HF generate, 1 and 4 streams
    rows = []
    bar = tqdm(total=10, desc="timing", unit="run", leave=False)
    for B in (1, 4):
        t_ours = fastest(ours_run(start, n, B), a.repeats)
        bar.update()
        t_hf = fastest(hf_run(n, B), a.repeats)
        bar.update()
        rows.append((f"{B} stream{'s' * (B > 1)}, {n} new tokens", "HF generate", B * n / t_ours, B * n / t_hf,
                     ">= 2x" if B == 1 else ">= 1.5x"))

    # the collapse guards' per-token cost: the same 4 streams with them off
    t_on, t_off = fastest(ours_run(start, n, 4), a.repeats), fastest(ours_run(start, n, 4, guards=False), a.repeats)
    bar.update(2)
    rows.append((f"4 streams, {n} new tokens, guards on", "guards off", 4 * n / t_on, 4 * n / t_off, ""))

    # 2b. long contexts: cache against full recompute, per token once the first one is out (the cache's
    # one-time prime of the prompt is reported apart)
    rng = torch.Generator().manual_seed(0)
    body = torch.randint(vocab.wait_offset + 1, vocab.composer_offset, (1024,), generator=rng).tolist()
    slow = a.slow_tokens
    primes = []
    for ctx in (512, 1024):
        prompt = [*start, *body[: ctx - slow - len(start)]]  # the window spans ctx - slow .. ctx tokens
        first_c, t_cache = steady(ours_run(prompt, slow, stream=True), a.repeats)
        bar.update()
        first_f, t_full = steady(ours_run(prompt, slow, use_cache=False, stream=True), 1)
        bar.update()
        primes.append(f"context {ctx}: first token {first_c * 1000:.0f} ms with the cache (prime), "
                      f"{first_f * 1000:.0f} ms without")
        rows.append((f"context {ctx - slow}..{ctx}, {slow} new tokens", "no cache", (slow - 1) / t_cache,
                     (slow - 1) / t_full, ">= 5x" if ctx == 1024 else ""))

    bar.close()

    # 3. the table
    print(f"{'run':<36} {'maia (tok/s)':>13} {'peer':<12} {'peer (tok/s)':>13} {'ratio':>7}  goal")
    for name, peer, ours_tps, peer_tps, goal in rows:
        ratio = ours_tps / peer_tps
        met = "" if not goal else ("  met" if ratio >= float(goal.split()[1].rstrip("x")) else "  MISSED")
        print(f"{name:<36} {ours_tps:>13.1f} {peer:<12} {peer_tps:>13.1f} {ratio:>6.2f}x  {goal}{met}")
    print("long contexts: tokens/s after the first token; " + "; ".join(primes))
    return 0


if __name__ == "__main__":
    sys.exit(main())

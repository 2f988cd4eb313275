"""Training speed: maia's GPT against Hugging Face transformers' GPT2LMHeadModel of the same shape.

Usage: .venv/bin/python -m bench.training [--device auto] [--batch 8] [--seq 512] [--rounds 5] [--steps 2]
                                          [--threads 2] [--dropout 0.1] [--eager] [--proposed] [--bf16]
                                          [--compile] [--json OUT]

Steps:
1. Build both models with the shape of training/configs/gpt.toml: 6 layers, 8 heads, width 256, MLP 1024,
   context 512, the vocabulary of the default music21 corpus, tied embeddings, the same dropout (HF's
   attn_pdrop follows maia's attn_dropout: dropout on attention probabilities costs ~2x on CPU). HF runs
   with attn_implementation="sdpa" (and "eager" too with --eager) and activation "gelu" (exact GELU, as
   maia's ``nn.GELU()``; GPT-2's default "gelu_new" is a slower tanh approximation written in Python ops).
   GPT-2 keeps its biases, maia's GPT has none (its default): that difference is part of what is measured.
2. One training step = forward on (batch, seq) random ids + float32 cross-entropy on the logits + backward
   + AdamW step, written the same way for both (training/train.py's loop without the data loader). maia's
   optimizer is its own ``configure_optimizers`` (what train.py runs); HF's is the HF Trainer's default,
   fused AdamW. --proposed adds maia with the changes to gpt.py that PROPOSED below describes.
3. Warm up, then ``rounds`` rounds; in each round every model runs ``steps`` timed steps, the order
   alternating between rounds, so that machine noise hits all alike. The figures are the median round and
   the best round (on a machine shared with other work the best round is the least disturbed one).
4. Print tokens/s of each model and the ratio maia / HF. --bf16: bf16 autocast on CPU as well (AVX-512 BF16
   or AMX CPUs; train.py's dtype="bfloat16"). On CUDA: bf16 autocast (as train.py), fused AdamW,
   --compile for torch.compile of both, and model FLOPs utilisation against an H100's 989 TFLOP/s dense
   bf16: flops per token = 6 N (N = parameters less the position embedding) + 6 n_layer T n_embd
   (causal attention: half of the 12 L T C of the PaLM / nanoGPT estimate, forward and backward).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

from maia.models.gpt import GPT, GPTConfig
from maia.vocab import Vocab

H100_BF16_FLOPS = 989e12  # dense bf16 tensor-core peak of an H100 SXM
PROPOSED = """maia GPT, PROPOSED: GPT.configure_optimizers with fused=True on CPU as on CUDA (torch's fused CPU
AdamW: one kernel over all parameters instead of ~10 small, separately threaded ops per parameter tensor)."""


def default_vocab_size() -> int:
    """Vocabulary size of the default music21 corpus (training/prepare.py's collections)."""
    from training.prepare import COMPOSER_ALIASES, DEFAULT_COLLECTIONS

    return len(Vocab(composers=tuple(COMPOSER_ALIASES.get(c, c) for c in DEFAULT_COLLECTIONS)))


def maia_config(vocab_size: int, seq: int, dropout: float) -> GPTConfig:
    return GPTConfig(vocab_size=vocab_size, block_size=seq, n_layer=6, n_head=8, n_embd=256, d_ff=1024, dropout=dropout)


def build(name: str, vocab_size: int, seq: int, dropout: float, device: str):
    """(model, optimizer) for 'maia', 'maia-proposed', 'hf-sdpa' or 'hf-eager'."""
    torch.manual_seed(0)
    cfg = maia_config(vocab_size, seq, dropout)
    if name.startswith("maia"):
        model = GPT(cfg).to(device)
        if name == "maia-proposed":  # what PROPOSED says, without touching gpt.py
            return model, torch.optim.AdamW(model.parameters(), lr=6e-4, betas=(0.9, 0.95), weight_decay=0.1,
                                            fused=True)
        return model, model.configure_optimizers(0.1, 6e-4, (0.9, 0.95), device)  # what train.py runs
    from transformers import GPT2Config, GPT2LMHeadModel

    # the same dropout as maia's GPT everywhere, on the attention probabilities included
    attn_p = getattr(cfg, "attn_dropout", cfg.dropout)
    hf_cfg = GPT2Config(vocab_size=vocab_size, n_positions=seq, n_embd=256, n_layer=6, n_head=8, n_inner=1024,
                        activation_function="gelu", resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=attn_p,
                        bos_token_id=None, eos_token_id=None, tie_word_embeddings=True)
    model = GPT2LMHeadModel._from_config(hf_cfg, attn_implementation=name.removeprefix("hf-")).to(device)
    assert model.config._attn_implementation == name.removeprefix("hf-")
    # fused AdamW: the HF Trainer's default optimizer ("adamw_torch_fused") since torch 2.8, CPU included
    opt = torch.optim.AdamW(model.parameters(), lr=6e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    return model, opt


def n_params(model) -> int:
    """Distinct parameters (the tied embedding once), less the position embedding."""
    params = {id(p): p for p in model.parameters()}
    pos = [m.weight for n, m in model.named_modules() if n.endswith(("wpe",))]
    return sum(p.numel() for p in params.values()) - sum(p.numel() for p in pos)


def make_step(model, opt, x, y, ctx, hf: bool, compile: bool):
    """A closure running one training step on the fixed batch (x, y)."""
    fwd = torch.compile(model) if compile else model

    def step():
        with ctx:
            logits = fwd(input_ids=x).logits if hf else fwd(x)  # (B, T, V)
        loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    return step


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=2, help="timed steps per model per round")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    ap.add_argument("--dropout", type=float, default=0.1, help="the training config's 0.1 by default")
    ap.add_argument("--eager", action="store_true", help="also HF with attn_implementation='eager'")
    ap.add_argument("--compile", action="store_true", help="torch.compile both models (CUDA)")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast on CPU too (train.py's dtype=bfloat16)")
    ap.add_argument("--proposed", action="store_true", help="also maia with the changes PROPOSED suggests")
    ap.add_argument("--json", type=Path, help="write the figures here too")
    a = ap.parse_args(argv)
    device = a.device if a.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        torch.set_num_threads(a.threads)
    else:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    bf16 = device == "cuda" or a.bf16
    ctx = torch.autocast(device, dtype=torch.bfloat16) if bf16 else nullcontext()
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    V = default_vocab_size()
    names = ["maia", "hf-sdpa"] + (["hf-eager"] if a.eager else []) + (["maia-proposed"] if a.proposed else [])
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, V, (a.batch, a.seq), generator=g).to(device)
    y = torch.randint(0, V, (a.batch, a.seq), generator=g).to(device)

    steps, params = {}, {}
    for name in names:
        model, opt = build(name, V, a.seq, a.dropout, device)
        model.train()
        params[name] = n_params(model)
        steps[name] = make_step(model, opt, x, y, ctx, name.startswith("hf"), a.compile)
        for _ in range(a.warmup):
            steps[name]()
        sync()

    times = {n: [] for n in names}
    for r in range(a.rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            sync()
            t0 = time.perf_counter()
            for _ in range(a.steps):
                steps[name]()
            sync()
            times[name].append(time.perf_counter() - t0)

    tokens = a.batch * a.seq * a.steps
    rate = {n: tokens / statistics.median(ts) for n, ts in times.items()}
    best = {n: tokens / min(ts) for n, ts in times.items()}  # the least disturbed round on a busy machine
    dev = (torch.cuda.get_device_name() if device == "cuda" else
           f"{platform.machine()}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}")
    mc = maia_config(V, a.seq, a.dropout)
    print(f"training step (forward + backward + AdamW), batch {a.batch} x {a.seq} tokens, dropout {a.dropout} "
          f"(attention probabilities {getattr(mc, 'attn_dropout', mc.dropout)}), "
          f"vocab {V}, {device} ({dev}), torch {torch.__version__}"
          f"{', bf16 autocast' if bf16 else ', float32'}{', compiled' if a.compile else ''}; "
          f"median of {a.rounds} interleaved rounds of {a.steps} steps")
    import transformers

    print(f"{'model':<24} {'params':>9} {'tokens/s':>10} {'maia/this':>10} {'best round':>11} {'maia/this':>10}"
          + ("  MFU" if device == "cuda" else ""))
    results = {}
    for name in names:
        label = {"maia": "maia GPT", "maia-proposed": "maia GPT, PROPOSED"}.get(
            name, f"HF GPT2 ({name[3:]}) {transformers.__version__}")
        flops_per_token = 6 * params[name] + 6 * 6 * a.seq * 256
        mfu = rate[name] * flops_per_token / H100_BF16_FLOPS if device == "cuda" else None
        results[name] = {"tokens_per_s": rate[name], "best_tokens_per_s": best[name], "params": params[name],
                         "mfu": mfu, "seconds": times[name]}
        print(f"{label:<24} {params[name] / 1e6:>8.2f}M {rate[name]:>10,.0f} {rate['maia'] / rate[name]:>9.2f}x "
              f"{best[name]:>11,.0f} {best['maia'] / best[name]:>9.2f}x" + (f"  {100 * mfu:.1f}%" if mfu is not None else ""))
    if a.proposed:
        print(PROPOSED)
    print(f"maia / HF sdpa: {rate['maia'] / rate['hf-sdpa']:.2f}x (median rounds), {best['maia'] / best['hf-sdpa']:.2f}x "
          f"(best rounds); seconds per round: " + "; ".join(f"{n} " + " ".join(f"{t:.1f}" for t in times[n]) for n in names))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"device": device, "batch": a.batch, "seq": a.seq, "dropout": a.dropout,
                                      "compile": a.compile, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

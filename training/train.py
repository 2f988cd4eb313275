"""Train a maia model on a prepared corpus.

Usage:
    python -m training.train --config training/configs/gpt.toml [--key=value ...]
    torchrun --nproc_per_node=2 -m training.train --config training/configs/gpt.toml

Overrides name a config key as ``--section.key=value`` or, when unambiguous, ``--key=value``
(e.g. ``--max_steps=2000 --model.n_layer=4 --out=runs/try``); the keys, their types and defaults are the
dataclasses of training/config.py, and a typo is refused before anything runs. Steps:
  1. read the config and the corpus; build the model from [model];
  2. AdamW (decay on matmul weights only), linear warmup then cosine decay, gradient clipping;
     bf16 autocast on CUDA (not for the LSTM), optional torch.compile;
  3. every eval_interval steps: validation loss on held-out pieces, a CSV row and the loss-curve PNG,
     and a checkpoint folder (model.safetensors + config.json) plus the optimiser state for resuming.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from maia.checkpoint import load_model, read_vocab, save_model
from maia.errors import MaiaError
from maia.merges import learn_merges
from maia.models import MODELS, build_model
from training.config import Config, ConfigError, TrainConfig, load_config
from training.data import IGNORE, Corpus, WindowDataset, make_loader, window_weights
from training.warmstart import init_config, warm_start


def lr_at(step: int, t: TrainConfig, time_frac: float = 0.0) -> float:
    """Linear warmup to lr, then cosine decay to min_lr at max_steps, or at max_minutes of wall-clock
    time (``time_frac`` = elapsed / max_minutes) when that budget runs out first."""
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    frac = min(1.0, max(time_frac, (step - t.warmup_steps) / max(1, t.max_steps - t.warmup_steps)))
    return t.min_lr + 0.5 * (1 + math.cos(math.pi * frac)) * (t.lr - t.min_lr)


@torch.no_grad()
def evaluate_loss(model, loader, device, ctx, max_batches: int) -> float:
    """Mean cross-entropy (nats per token) over up to max_batches validation batches."""
    model.eval()
    total, count = 0.0, 0
    for b, (x, y) in enumerate(loader):
        if b >= max_batches:
            break
        x, y = x.to(device), y.to(device)
        with ctx:
            logits = model(x)
        total += F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), ignore_index=IGNORE, reduction="sum").item()
        count += (y != IGNORE).sum().item()
    model.train()
    return total / max(count, 1)


def plot_curve(log_path: Path, png_path: Path) -> None:
    """Loss curve (train and validation, bits per token) from the CSV log."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with open(log_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    fig = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    toks = [int(r["tokens"]) / 1e6 for r in rows]
    ln2 = math.log(2)
    ax.plot(toks, [float(r["train_loss"]) / ln2 for r in rows], label="train")
    ax.plot(toks, [float(r["val_loss"]) / ln2 for r in rows], label="validation", marker="o", ms=3)
    ax.set_xlabel("training tokens (millions)")
    ax.set_ylabel("bits per token")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", help="TOML file in training/configs/")
    args, overrides = ap.parse_known_args(argv)
    try:
        return train(load_config(args.config, overrides))
    except MaiaError as e:  # a bad setting, a missing or corrupt corpus, a bad --init model: one line, exit 1
        print(f"error: {e}", file=sys.stderr)
        return 1


def train(cfg: Config) -> int:
    t, d, m = cfg.train, cfg.data, dict(cfg.model)
    kind = m.pop("kind")
    if kind not in MODELS:
        raise ConfigError(f"unknown model kind {kind!r}; known: {', '.join(MODELS)}")

    # ---- devices and processes ----------------------------------------------------------------------
    ddp = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    rank, world = (int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])) if ddp else (0, 1)
    device = t.device if t.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if ddp:
        dist.init_process_group("nccl" if device == "cuda" else "gloo")
        if device == "cuda":
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
            torch.cuda.set_device(device)
    master = rank == 0
    device_type = "cuda" if device.startswith("cuda") else "cpu"
    if t.threads:
        torch.set_num_threads(int(t.threads))
    torch.manual_seed(t.seed + rank)
    if device_type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    # bf16 autocast: by default on CUDA; on CPUs with AVX-512 BF16 / AMX ask for it (dtype="bfloat16").
    # Never for the LSTM, whose fused kernels lack bf16.
    use_bf16 = kind != "lstm" and (t.dtype == "bfloat16" or (t.dtype == "auto" and device_type == "cuda"))
    ctx = torch.autocast(device_type, dtype=torch.bfloat16) if use_bf16 else nullcontext()

    # ---- data ----------------------------------------------------------------------------------------
    corpus = Corpus.load(d.data_dir)
    exclude = tuple(d.exclude_composers)
    train_pieces = corpus.pieces("train", d.min_tokens, exclude)
    vocab = corpus.vocab
    if d.fim_rate:
        vocab = replace(vocab, fim=True)  # the markers sit after the composers: corpus ids do not move
    if d.merges:
        vocab = learn_merges(train_pieces, vocab, int(d.merges))
    if t.resume and (Path(t.out) / "config.json").exists():
        vocab = read_vocab(t.out)  # the merges learnt when the run began
    train_set = WindowDataset(train_pieces, vocab, d.seq_len, d.overlap, d.transpose, d.materialise,
                              seed=t.seed + rank, unknown_composer=d.unknown_composer, fim_rate=d.fim_rate)
    valid_set = WindowDataset(corpus.pieces("valid", d.min_tokens, exclude), vocab, d.seq_len, d.overlap,
                              transpose=False)
    sampler = torch.utils.data.DistributedSampler(train_set, seed=t.seed) if ddp else None
    if d.composer_weights:  # e.g. {pop = 0.35}: draw that composer's windows less often
        if ddp:
            raise ConfigError("data.composer_weights is not supported under DDP")
        entries = [e for e in corpus.entries("train", exclude) if e["tokens"] >= d.min_tokens]
        w = window_weights(train_set, entries, d.composer_weights)
        sampler = torch.utils.data.WeightedRandomSampler(torch.as_tensor(w), len(w), replacement=True,
                                                         generator=torch.Generator().manual_seed(t.seed))
    train_loader = make_loader(train_set, t.batch_size, True, sampler, t.workers, t.seed)
    valid_loader = make_loader(valid_set, t.batch_size, False)
    if len(train_loader) == 0:
        raise ConfigError(f"{d.data_dir}: not enough training windows for batch size {t.batch_size}")

    # ---- model and optimiser --------------------------------------------------------------------------
    out = Path(t.out)
    m.setdefault("block_size", d.seq_len)
    m["vocab_size"] = len(vocab)
    step, tokens_seen, elapsed = 0, 0, 0.0
    if t.resume and (out / "config.json").exists():
        model, _, saved = load_model(out, device)
        model.train()
        step, tokens_seen = saved["training"]["step"], saved["training"]["tokens"]
        elapsed = float(saved["training"].get("seconds", 0.0))  # the time budget and schedule go on from here
    elif t.init:
        model = build_model(kind, init_config(t.init, kind, m))
        report = warm_start(model, t.init, vocab)
        model = model.to(device)
        if master:
            print(f"init from {t.init}: {report['tokens_copied']} token rows copied, new {report['tokens_new']}, "
                  f"positions {report['positions'] or 'kept'}")
    else:
        model = build_model(kind, m).to(device)
    model_cfg = model.config
    if getattr(model, "max_context", None) and model.max_context < d.seq_len:
        raise ConfigError(f"seq_len {d.seq_len} exceeds the model's context {model.max_context}; "
                         f"set model.block_size too")
    opt = model.configure_optimizers(t.weight_decay, t.lr, (t.beta1, t.beta2), device_type)
    if t.resume and (out / "optim.pt").exists():
        opt.load_state_dict(torch.load(out / "optim.pt", map_location=device, weights_only=True))
    raw = model
    if t.compile:
        model = torch.compile(model)
    if ddp:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device_type == "cuda" else None)

    if master:
        out.mkdir(parents=True, exist_ok=True)
        n_train = sum(len(p) for p in train_set.pieces)
        print(f"{kind}: {raw.num_params() / 1e6:.2f}M parameters, vocab {len(vocab)}, {len(train_set)} train "
              f"windows ({n_train:,} tokens), {len(valid_set)} valid windows, device {device} x{world}")
    log_path = out / "log.csv"
    if master and not (t.resume and log_path.exists()):
        with open(log_path, "w", newline="") as f:
            csv.writer(f).writerow(["step", "tokens", "lr", "train_loss", "val_loss", "tokens_per_s", "elapsed_s"])

    # ---- loop ----------------------------------------------------------------------------------------
    t0 = time.time() - elapsed
    best_val, running, run_n, tok_window, time_window = float("inf"), 0.0, 0, 0, time.time()
    epoch = 0
    bar = tqdm(total=t.max_steps, initial=step, disable=not master, dynamic_ncols=True)
    it = iter(train_loader)
    while step < t.max_steps:
        try:
            x, y = next(it)
        except StopIteration:
            epoch += 1
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)
            it = iter(train_loader)
            x, y = next(it)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        time_frac = (time.time() - t0) / (60 * t.max_minutes) if t.max_minutes else 0.0
        if ddp and t.max_minutes:  # every rank must agree on the schedule and on when to stop
            tf = torch.tensor([time_frac], device=device)
            dist.broadcast(tf, 0)
            time_frac = tf.item()
        for g in opt.param_groups:
            g["lr"] = lr_at(step, t, time_frac)
        with ctx:
            logits = model(x)
        loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), ignore_index=IGNORE)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if t.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        opt.step()
        step += 1
        n_tok = x.numel() * world
        tokens_seen += n_tok
        tok_window += n_tok
        running += loss.item()
        run_n += 1
        if master:
            rate = tok_window / max(time.time() - time_window, 1e-9)
            bar.set_postfix(loss=f"{loss.item():.3f}", tok_s=f"{rate:,.0f}", refresh=False)
            bar.update(1)
        last = step >= t.max_steps or time_frac >= 1.0
        if step % t.eval_interval == 0 or last:
            val = evaluate_loss(raw, valid_loader, device, ctx, t.eval_batches) if len(valid_set) else float("nan")
            rate = tok_window / max(time.time() - time_window, 1e-9)
            if master:
                best_val = min(best_val, val)
                extra = {
                    "training": {"step": step, "tokens": tokens_seen, "config": cfg.to_dict(), "device": device, "finished": last,
                                 "world_size": world, "seconds": round(time.time() - t0, 1),
                                 "torch": torch.__version__,
                                 "peak_cuda_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20
                                 if device_type == "cuda" else None},
                    "data": {"data_dir": str(d.data_dir), "train_pieces": len(train_set.pieces),
                             "sources": sorted({e.get("source") or "music21" for e in corpus.index}),
                             "valid_pieces": len(valid_set.pieces), "seq_len": d.seq_len},
                    "metrics": {"val_loss_nats": val, "val_bits_per_token": val / math.log(2)},
                }
                save_model(out, raw, kind, model_cfg, vocab, extra, dtype=None)  # fp32 to resume from
                torch.save(opt.state_dict(), out / ".optim.pt.tmp")  # atomic, like save_model
                os.replace(out / ".optim.pt.tmp", out / "optim.pt")
                # The log row after the checkpoint: a run killed in between resumes from the previous
                # checkpoint, whose row is the log's last, so the curve joins up without a repeated step.
                with open(log_path, "a", newline="") as f:
                    csv.writer(f).writerow([step, tokens_seen, f"{lr_at(step, t, time_frac):.3e}", f"{running / run_n:.4f}",
                                            f"{val:.4f}", f"{rate:.0f}", f"{time.time() - t0:.0f}"])
                plot_curve(log_path, out / "loss.png")
                tqdm.write(f"step {step}: train {running / run_n:.4f} val {val:.4f} nats/token, {rate:,.0f} tok/s")
            running, run_n, tok_window, time_window = 0.0, 0, 0, time.time()
        if last:
            break
    bar.close()
    if ddp:
        dist.destroy_process_group()
    if master:
        print(f"done: {step} steps, {tokens_seen:,} tokens in {time.time() - t0:.0f} s; checkpoint in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

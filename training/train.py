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


def lr_at(step: int, tc: TrainConfig, time_frac: float = 0.0) -> float:
    """Linear warmup to lr, then cosine decay to min_lr at max_steps, or at max_minutes of wall-clock
    time (``time_frac`` = elapsed / max_minutes) when that budget runs out first."""
    if step < tc.warmup_steps:
        return tc.lr * (step + 1) / tc.warmup_steps
    frac = min(1.0, max(time_frac, (step - tc.warmup_steps) / max(1, tc.max_steps - tc.warmup_steps)))
    return tc.min_lr + 0.5 * (1 + math.cos(math.pi * frac)) * (tc.lr - tc.min_lr)


@torch.no_grad()
def evaluate_loss(model, loader, device, ctx, max_batches: int) -> float:
    """Mean cross-entropy (nats per token) over up to max_batches validation batches."""
    model.eval()
    total, count = 0.0, 0
    for batch, (inputs, targets) in enumerate(loader):
        if batch >= max_batches:
            break
        inputs, targets = inputs.to(device), targets.to(device)
        with ctx:
            logits = model(inputs)
        total += F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=IGNORE,
                                 reduction="sum").item()
        count += (targets != IGNORE).sum().item()
    model.train()
    return total / max(count, 1)


def plot_curve(log_path: Path, png_path: Path) -> None:
    """Loss curve (train and validation, bits per token) from the CSV log."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with open(log_path, newline="") as log:
        rows = list(csv.DictReader(log))
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
    except MaiaError as err:  # a bad setting, a missing or corrupt corpus, a bad --init model: one line, exit 1
        print(f"error: {err}", file=sys.stderr)
        return 1


def train(cfg: Config) -> int:
    tc, dc, model_args = cfg.train, cfg.data, dict(cfg.model)
    kind = model_args.pop("kind")
    if kind not in MODELS:
        raise ConfigError(f"unknown model kind {kind!r}; known: {', '.join(MODELS)}")

    # ---- devices and processes ----------------------------------------------------------------------
    ddp = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    rank, world = (int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])) if ddp else (0, 1)
    device = tc.device if tc.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if ddp:
        dist.init_process_group("nccl" if device == "cuda" else "gloo")
        if device == "cuda":
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
            torch.cuda.set_device(device)
    master = rank == 0
    device_type = "cuda" if device.startswith("cuda") else "cpu"
    if tc.threads:
        torch.set_num_threads(int(tc.threads))
    torch.manual_seed(tc.seed + rank)
    if device_type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    # bf16 autocast: by default on CUDA; on CPUs with AVX-512 BF16 / AMX ask for it (dtype="bfloat16").
    # Never for the LSTM, whose fused kernels lack bf16.
    use_bf16 = kind != "lstm" and (tc.dtype == "bfloat16" or (tc.dtype == "auto" and device_type == "cuda"))
    ctx = torch.autocast(device_type, dtype=torch.bfloat16) if use_bf16 else nullcontext()

    # ---- data ----------------------------------------------------------------------------------------
    corpus = Corpus.load(dc.data_dir)
    exclude = tuple(dc.exclude_composers)
    train_pieces = corpus.pieces("train", dc.min_tokens, exclude)
    vocab = corpus.vocab
    if dc.fim_rate:
        vocab = replace(vocab, fim=True)  # the markers sit after the composers: corpus ids do not move
    if dc.merges:
        vocab = learn_merges(train_pieces, vocab, int(dc.merges))
    if tc.resume and (Path(tc.out) / "config.json").exists():
        vocab = read_vocab(tc.out)  # the merges learnt when the run began
    train_set = WindowDataset(train_pieces, vocab, dc.seq_len, dc.overlap, dc.transpose, dc.materialise,
                              seed=tc.seed + rank, unknown_composer=dc.unknown_composer, fim_rate=dc.fim_rate)
    valid_set = WindowDataset(corpus.pieces("valid", dc.min_tokens, exclude), vocab, dc.seq_len, dc.overlap,
                              transpose=False)
    sampler = torch.utils.data.DistributedSampler(train_set, seed=tc.seed) if ddp else None
    if dc.composer_weights:  # e.g. {pop = 0.35}: draw that composer's windows less often
        if ddp:
            raise ConfigError("data.composer_weights is not supported under DDP")
        entries = [entry for entry in corpus.entries("train", exclude) if entry["tokens"] >= dc.min_tokens]
        weights = window_weights(train_set, entries, dc.composer_weights)
        sampler = torch.utils.data.WeightedRandomSampler(torch.as_tensor(weights), len(weights), replacement=True,
                                                         generator=torch.Generator().manual_seed(tc.seed))
    train_loader = make_loader(train_set, tc.batch_size, True, sampler, tc.workers, tc.seed)
    valid_loader = make_loader(valid_set, tc.batch_size, False)
    if len(train_loader) == 0:
        raise ConfigError(f"{dc.data_dir}: not enough training windows for batch size {tc.batch_size}")

    # ---- model and optimiser --------------------------------------------------------------------------
    out = Path(tc.out)
    model_args.setdefault("block_size", dc.seq_len)
    model_args["vocab_size"] = len(vocab)
    step, tokens_seen, elapsed = 0, 0, 0.0
    if tc.resume and (out / "config.json").exists():
        model, _, saved = load_model(out, device)
        model.train()
        step, tokens_seen = saved["training"]["step"], saved["training"]["tokens"]
        elapsed = float(saved["training"].get("seconds", 0.0))  # the time budget and schedule go on from here
    elif tc.init:
        model = build_model(kind, init_config(tc.init, kind, model_args))
        report = warm_start(model, tc.init, vocab)
        model = model.to(device)
        if master:
            print(f"init from {tc.init}: {report['tokens_copied']} token rows copied, new {report['tokens_new']}, "
                  f"positions {report['positions'] or 'kept'}")
    else:
        model = build_model(kind, model_args).to(device)
    model_cfg = model.config
    if getattr(model, "max_context", None) and model.max_context < dc.seq_len:
        raise ConfigError(f"seq_len {dc.seq_len} exceeds the model's context {model.max_context}; "
                         f"set model.block_size too")
    opt = model.configure_optimizers(tc.weight_decay, tc.lr, (tc.beta1, tc.beta2), device_type)
    if tc.resume and (out / "optim.pt").exists():
        opt.load_state_dict(torch.load(out / "optim.pt", map_location=device, weights_only=True))
    raw = model
    if tc.compile:
        model = torch.compile(model)
    if ddp:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device_type == "cuda" else None)

    if master:
        out.mkdir(parents=True, exist_ok=True)
        n_train = sum(len(p) for p in train_set.pieces)
        print(f"{kind}: {raw.num_params() / 1e6:.2f}M parameters, vocab {len(vocab)}, {len(train_set)} train "
              f"windows ({n_train:,} tokens), {len(valid_set)} valid windows, device {device} x{world}")
    log_path = out / "log.csv"
    if master and not (tc.resume and log_path.exists()):
        with open(log_path, "w", newline="") as log:
            csv.writer(log).writerow(["step", "tokens", "lr", "train_loss", "val_loss", "tokens_per_s", "elapsed_s"])

    # ---- loop ----------------------------------------------------------------------------------------
    t0 = time.time() - elapsed
    running, run_n, tok_window, time_window = 0.0, 0, 0, time.time()
    epoch = 0
    bar = tqdm(total=tc.max_steps, initial=step, disable=not master, dynamic_ncols=True)
    it = iter(train_loader)
    while step < tc.max_steps:
        try:
            inputs, targets = next(it)
        except StopIteration:
            epoch += 1
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)
            it = iter(train_loader)
            inputs, targets = next(it)
        inputs, targets = inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        time_frac = (time.time() - t0) / (60 * tc.max_minutes) if tc.max_minutes else 0.0
        if ddp and tc.max_minutes:  # every rank must agree on the schedule and on when to stop
            shared = torch.tensor([time_frac], device=device)
            dist.broadcast(shared, 0)
            time_frac = shared.item()
        for group in opt.param_groups:
            group["lr"] = lr_at(step, tc, time_frac)
        with ctx:
            logits = model(inputs)
        loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=IGNORE)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if tc.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        opt.step()
        step += 1
        n_tok = inputs.numel() * world
        tokens_seen += n_tok
        tok_window += n_tok
        running += loss.item()
        run_n += 1
        if master:
            rate = tok_window / max(time.time() - time_window, 1e-9)
            bar.set_postfix(loss=f"{loss.item():.3f}", tok_s=f"{rate:,.0f}", refresh=False)
            bar.update(1)
        last = step >= tc.max_steps or time_frac >= 1.0
        if step % tc.eval_interval == 0 or last:
            val = evaluate_loss(raw, valid_loader, device, ctx, tc.eval_batches) if len(valid_set) else float("nan")
            rate = tok_window / max(time.time() - time_window, 1e-9)
            if master:
                extra = {
                    "training": {"step": step, "tokens": tokens_seen, "config": cfg.to_dict(), "device": device, "finished": last,
                                 "world_size": world, "seconds": round(time.time() - t0, 1),
                                 "torch": torch.__version__,
                                 "peak_cuda_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20
                                 if device_type == "cuda" else None},
                    "data": {"data_dir": str(dc.data_dir), "train_pieces": len(train_set.pieces),
                             "sources": sorted({entry.get("source") or "music21" for entry in corpus.index}),
                             "valid_pieces": len(valid_set.pieces), "seq_len": dc.seq_len},
                    "metrics": {"val_loss_nats": val, "val_bits_per_token": val / math.log(2)},
                }
                save_model(out, raw, kind, model_cfg, vocab, extra, dtype=None)  # fp32 to resume from
                torch.save(opt.state_dict(), out / ".optim.pt.tmp")  # atomic, like save_model
                os.replace(out / ".optim.pt.tmp", out / "optim.pt")
                # The log row after the checkpoint: a run killed in between resumes from the previous
                # checkpoint, whose row is the log's last, so the curve joins up without a repeated step.
                with open(log_path, "a", newline="") as log:
                    csv.writer(log).writerow([step, tokens_seen, f"{lr_at(step, tc, time_frac):.3e}", f"{running / run_n:.4f}",
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

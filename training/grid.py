"""A grid over context length and batch size, every run on the same budget of training tokens or time.

Usage:
    python -m training.grid --config training/configs/gpt.toml --seq-len 256,512,1024 --batch-size 16,32,64 \
        --budget-tokens 20000000 [--out runs/grid] [--key=value ...]
    python -m training.grid --config training/configs/piano.toml --seq-len 256,512,1024 --batch-size 8,16,32 \
        --minutes 10 --eval-tokens 131072 --out runs/grid_piano   # equal wall-clock: what a CPU-bound project can afford

Steps:
  1. for each (seq_len, batch_size): max_steps = budget / (seq_len * batch_size) (or, with --minutes, the
     steps that fit in that time: the schedule ends with it), warmup at most a tenth
     of that, one evaluation at the end on the whole validation split (so every run is scored on the same
     pieces), model.block_size = seq_len; any other ``--key=value`` goes to every run unchanged;
  2. train it as its own ``python -m training.train`` process into OUT/sl<seq_len>_bs<batch_size>/ (its
     output in train.log there), so that the peak memory of each run is its own: the process's maximum
     resident set on CPU (``os.wait4``'s rusage), ``torch.cuda.max_memory_allocated`` on CUDA (train.py
     records it in config.json);
  3. write OUT/grid.csv, OUT/grid.md (validation loss, tokens/s, peak memory, time) and OUT/grid.png.
A run that fails (out of memory, say) is reported as failed and the grid goes on.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from tqdm import tqdm

from training.config import load_config

COLUMNS = ["seq_len", "batch_size", "max_steps", "tokens", "val_loss", "val_bits_per_token", "tokens_per_s",
           "peak_memory_mb", "memory_kind", "minutes", "status"]


def plan(seq_lens: list[int], batch_sizes: list[int], budget: int | None, warmup: int,
         minutes: float | None = None, eval_tokens: int | None = None) -> list[dict]:
    """One entry per run: its settings and the overrides that give them. With ``minutes``, every run gets
    that wall-clock budget (its schedule ends with it) and is evaluated once, at the end. With ``eval_tokens``,
    that evaluation reads the first ``eval_tokens`` tokens of validation windows rather than all of them: with
    the same window overlap, every run then scores the same opening stretch of the validation pieces."""
    runs = []
    for sl in seq_lens:
        for bs in batch_sizes:
            batches = max(1, math.ceil(eval_tokens / (sl * bs))) if eval_tokens else 1000000000
            if minutes is not None:
                runs.append({"seq_len": sl, "batch_size": bs, "max_steps": 0, "overrides": [
                    f"--data.seq_len={sl}", f"--model.block_size={sl}", f"--train.batch_size={bs}",
                    "--train.max_steps=1000000000", "--train.eval_interval=1000000000", f"--train.max_minutes={minutes}",
                    f"--train.warmup_steps={warmup}", f"--train.eval_batches={batches}"]})
                continue
            steps = max(1, budget // (sl * bs))
            runs.append({"seq_len": sl, "batch_size": bs, "max_steps": steps, "overrides": [
                f"--data.seq_len={sl}", f"--model.block_size={sl}", f"--train.batch_size={bs}",
                f"--train.max_steps={steps}", f"--train.eval_interval={steps}",
                f"--train.warmup_steps={min(warmup, max(1, steps // 10))}", f"--train.eval_batches={batches}"]})
    return runs


def run_one(config: str | None, overrides: list[str], out: Path) -> tuple[int, float, float]:
    """Trains one run in a child process -> (exit status, peak resident memory in MB, seconds)."""
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "training.train", *(["--config", config] if config else []), *overrides,
           f"--train.out={out}"]
    t0 = time.time()
    with open(out / "train.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[1])
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, not all children's
        proc.returncode = os.waitstatus_to_exitcode(status)
    maxrss_mb = usage.ru_maxrss / 1024  # Linux reports kilobytes
    return proc.returncode, maxrss_mb, time.time() - t0


def collect(run: dict, out: Path, code: int, maxrss_mb: float, seconds: float) -> dict:
    """The table row of a finished run, from its config.json and log.csv."""
    row = {k: run[k] for k in ("seq_len", "batch_size", "max_steps")}
    row.update(tokens="", val_loss="", val_bits_per_token="", tokens_per_s="", peak_memory_mb=round(maxrss_mb),
               memory_kind="max RSS", minutes=round(seconds / 60, 2), status="ok" if code == 0 else f"failed ({code})")
    if code != 0 or not (out / "config.json").exists():
        return row
    cfg = json.loads((out / "config.json").read_text())
    if not row["max_steps"]:  # a run on a time budget: the steps it made
        row["max_steps"] = cfg["training"]["step"]
    with open(out / "log.csv", newline="") as f:
        last = list(csv.DictReader(f))[-1]
    val = cfg["metrics"]["val_loss_nats"]
    row.update(tokens=cfg["training"]["tokens"], val_loss=round(val, 4), val_bits_per_token=round(val / math.log(2), 4),
               tokens_per_s=int(float(last["tokens_per_s"])))
    if cfg["training"].get("peak_cuda_memory_mb") is not None:
        row.update(peak_memory_mb=round(cfg["training"]["peak_cuda_memory_mb"]), memory_kind="CUDA allocated")
    return row


def write_table(rows: list[dict], out: Path, title: str) -> None:
    """grid.csv and grid.md."""
    with open(out / "grid.csv", "w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS)
        w.writeheader()
        w.writerows(rows)
    lines = [title, "", "| seq_len | batch | steps | val loss (nats) | val bits/token | tokens/s | peak memory (MB) | minutes | status |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['seq_len']} | {r['batch_size']} | {r['max_steps']} | {r['val_loss']} | "
                     f"{r['val_bits_per_token']} | {r['tokens_per_s']} | {r['peak_memory_mb']} ({r['memory_kind']}) | "
                     f"{r['minutes']} | {r['status']} |")
    (out / "grid.md").write_text("\n".join(lines) + "\n")


def plot(rows: list[dict], png: Path) -> None:
    """A heat map of validation bits/token over seq_len x batch size (the winner boxed), and tokens/s against
    seq_len, one line per batch size."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    ok = [r for r in rows if r["status"] == "ok" and r["val_bits_per_token"] != ""]
    sls, bss = sorted({r["seq_len"] for r in rows}), sorted({r["batch_size"] for r in rows})
    grid = np.full((len(sls), len(bss)), np.nan)
    for r in ok:
        grid[sls.index(r["seq_len"]), bss.index(r["batch_size"])] = float(r["val_bits_per_token"])
    fig = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    im = ax1.imshow(grid, cmap="viridis_r", origin="lower", aspect="auto")
    fig.colorbar(im, ax=ax1, label="validation bits per token (lower is better)")
    ax1.set_xticks(range(len(bss)), [str(b) for b in bss])
    ax1.set_yticks(range(len(sls)), [str(s) for s in sls])
    ax1.set_xlabel("batch size (windows)")
    ax1.set_ylabel("seq_len (tokens)")
    for i in range(len(sls)):
        for j in range(len(bss)):
            if not np.isnan(grid[i, j]):
                ax1.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", color="white", fontsize=9)
    if ok and not np.all(np.isnan(grid)):
        i, j = np.unravel_index(np.nanargmin(grid), grid.shape)
        ax1.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
    for bs in bss:
        mine = [r for r in ok if r["batch_size"] == bs]
        if mine:
            ax2.plot([r["seq_len"] for r in mine], [float(r["tokens_per_s"]) for r in mine], marker="o", label=f"batch {bs}")
    ax2.set_xscale("log", base=2)
    ax2.set_xlabel("seq_len (tokens)")
    ax2.set_ylabel("training tokens per second")
    ax2.grid(alpha=0.3)
    ax2.legend()
    fig.tight_layout()
    fig.savefig(png)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 allow_abbrev=False)  # the rest of the line is --key=value overrides
    ap.add_argument("--config", help="TOML file in training/configs/")
    ap.add_argument("--seq-len", required=True, help="comma-separated, e.g. 256,512,1024")
    ap.add_argument("--batch-size", required=True, help="comma-separated, e.g. 16,32,64")
    ap.add_argument("--budget-tokens", type=int, help="training tokens per run")
    ap.add_argument("--minutes", type=float, help="or: wall-clock minutes per run (equal time, not tokens)")
    ap.add_argument("--eval-tokens", type=int, help="score each run on this many validation tokens (default: all)")
    ap.add_argument("--out", type=Path, default=Path("runs/grid"))
    a, overrides = ap.parse_known_args(argv)
    seq_lens = [int(x) for x in a.seq_len.split(",")]
    batch_sizes = [int(x) for x in a.batch_size.split(",")]
    if (a.budget_tokens is None) == (a.minutes is None):
        ap.error("give one budget: --budget-tokens or --minutes")
    base = load_config(a.config, overrides)  # fails early on a bad override
    runs = plan(seq_lens, batch_sizes, a.budget_tokens, base.train.warmup_steps, a.minutes, a.eval_tokens)
    a.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for run in tqdm(runs, desc="grid"):
        out = a.out / f"sl{run['seq_len']}_bs{run['batch_size']}"
        code, maxrss, seconds = run_one(a.config, run["overrides"] + overrides, out)
        rows.append(collect(run, out, code, maxrss, seconds))
        tqdm.write(f"seq_len {run['seq_len']} batch {run['batch_size']}: {rows[-1]['status']}, "
                   f"val {rows[-1]['val_loss']} nats, {rows[-1]['tokens_per_s']} tok/s")
        write_table(rows, a.out, _title(a, base))  # after every run: a long grid can be read as it goes
    plot(rows, a.out / "grid.png")
    print((a.out / "grid.md").read_text())
    return 0 if all(r["status"] == "ok" for r in rows) else 1


def _title(a, cfg) -> str:
    budget = f"{a.budget_tokens:,} training tokens" if a.budget_tokens else f"{a.minutes:g} minutes"
    scored = f"the first {a.eval_tokens:,} validation tokens" if a.eval_tokens else "the whole validation split"
    return (f"Grid: {cfg.model.get('kind', 'gpt')} from {a.config or 'defaults'}, {budget} per run, "
            f"data {cfg.data.data_dir}, each run scored on {scored}.")


if __name__ == "__main__":
    sys.exit(main())

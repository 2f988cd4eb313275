"""Tests for training/train.py and training/grid.py on the tiny corpus: a tiny GPT learns, checkpoints,
resumes, runs under 2-process DDP (gloo, CPU), and a 2x1 grid writes its table."""

import csv
import itertools
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from training import grid
from training.config import ConfigError, TrainConfig, load_config
from training.train import lr_at, main

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "training/configs/gpt.toml")


def tiny_overrides(corpus: Path, out: Path, **extra) -> list[str]:
    """A 1-layer, 32-wide GPT on 32-token windows: ~50 steps in a few seconds on one core."""
    o = {"data.data_dir": str(corpus), "data.seq_len": 32, "model.block_size": 32, "model.n_layer": 1,
         "model.n_head": 2, "model.n_embd": 32, "model.d_ff": 64, "model.dropout": 0.0, "train.batch_size": 8,
         "train.lr": 1e-2, "train.min_lr": 1e-3, "train.warmup_steps": 5, "train.max_steps": 50,
         "train.eval_interval": 10, "train.eval_batches": 4, "train.threads": 1, "train.out": str(out), **extra}
    return [f"--{k}={json.dumps(v) if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else v}"
            for k, v in o.items()]


def read_log(out: Path) -> list[dict]:
    with open(out / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_load_config_overrides():
    cfg = load_config(CONFIG, ["--max_steps=7", "--model.n_layer=2", "--data_dir=x", "--compile=true", "--lr=1"])
    assert cfg.train.max_steps == 7 and cfg.model["n_layer"] == 2 and cfg.data.data_dir == "x"
    assert cfg.train.compile is True and cfg.model["kind"] == "gpt"
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)  # converted by the field's type
    with pytest.raises(ConfigError, match=r"section\.key"):
        load_config(CONFIG, ["--nonexistent=1"])


@pytest.mark.parametrize("override,message", [
    ("--train.max_step=10", r"unknown key\(s\) train\.max_step; \[train\] knows .*max_steps"),
    ("--max_steps=ten", r"train\.max_steps: 'ten' is not a valid int"),
    ("--max_steps=2.5", r"train\.max_steps: 2\.5 is not a valid int"),
    ("--compile=yes", r"train\.compile: 'yes' is not a valid bool"),
    ("--data.exclude_composers=schubert", r"data\.exclude_composers: 'schubert' is not a valid list"),
    ("--trian.lr=1", r"unknown section 'trian'"),
])
def test_load_config_refuses_typos_and_bad_values(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(CONFIG, [override])


def test_load_config_refuses_unknown_keys_in_a_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nmax_step = 3\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: unknown key\(s\) train\.max_step"):
        load_config(str(bad), [])
    bad.write_text("[trian]\nlr = 3\n")
    with pytest.raises(ConfigError, match=r"unknown section \[trian\]"):
        load_config(str(bad), [])


def test_train_cli_names_a_bad_key_before_reading_data(tmp_path, capsys):
    assert main(["--config", CONFIG, "--train.max_step=3", "--data.data_dir=/nonexistent"]) == 1
    err = capsys.readouterr().err
    assert "train.max_step" in err and "max_steps" in err and "Traceback" not in err


def test_lr_schedule():
    t = TrainConfig(lr=1.0, min_lr=0.1, warmup_steps=10, max_steps=110)
    assert lr_at(0, t) == pytest.approx(0.1) and lr_at(9, t) == pytest.approx(1.0)
    assert lr_at(60, t) == pytest.approx(0.55) and lr_at(110, t) == pytest.approx(0.1)


@pytest.fixture(scope="module")
def trained(tiny_corpus, tmp_path_factory):
    """A tiny GPT trained 50 steps, evaluated and checkpointed every 10."""
    out = tmp_path_factory.mktemp("run") / "gpt"
    assert main(["--config", CONFIG, *tiny_overrides(tiny_corpus, out)]) == 0
    return out


def test_training_learns_and_checkpoints(trained):
    for name in ("model.safetensors", "config.json", "log.csv", "loss.png", "optim.pt"):
        assert (trained / name).stat().st_size > 0, name
    rows = read_log(trained)
    assert [int(r["step"]) for r in rows] == [10, 20, 30, 40, 50]
    train_loss = [float(r["train_loss"]) for r in rows]
    val_loss = [float(r["val_loss"]) for r in rows]
    start = math.log(json.loads((trained / "config.json").read_text())["model"]["vocab_size"])  # uniform guess
    assert train_loss[-1] < start - 1.0 and train_loss[-1] < train_loss[0]
    assert val_loss[-1] < val_loss[0] < start
    cfg = json.loads((trained / "config.json").read_text())
    assert cfg["training"]["step"] == 50 and cfg["training"]["tokens"] == 50 * 8 * 32
    assert cfg["metrics"]["val_loss_nats"] == pytest.approx(val_loss[-1], abs=1e-4)


def test_resume_continues_from_saved_step(trained, tiny_corpus, tmp_path):
    import shutil

    out = tmp_path / "gpt"
    shutil.copytree(trained, out)
    assert main(["--config", CONFIG, *tiny_overrides(tiny_corpus, out, **{"train.max_steps": 60, "train.resume": True})]) == 0
    rows = read_log(out)
    assert [int(r["step"]) for r in rows] == [10, 20, 30, 40, 50, 60]  # appended, not restarted
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["training"]["step"] == 60 and cfg["training"]["tokens"] == 60 * 8 * 32
    # the resumed model goes on from the saved weights, not from scratch (~ln(237) = 5.5 nats)
    val = [float(r["val_loss"]) for r in rows]
    assert val[-1] < val[0] and abs(val[-1] - val[-2]) < 0.2


def test_seq_len_longer_than_context_is_refused(tiny_corpus, tmp_path, capsys):
    assert main(["--config", CONFIG, *tiny_overrides(tiny_corpus, tmp_path / "x", **{"model.block_size": 16})]) == 1
    assert "exceeds the model's context" in capsys.readouterr().err


@pytest.mark.slow
def test_ddp_two_processes_on_cpu(tiny_corpus, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
           "training.train", "--config", CONFIG,
           *tiny_overrides(tiny_corpus, out, **{"train.max_steps": 6, "train.eval_interval": 3})]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert (out / "model.safetensors").exists() and not any(p.is_dir() for p in out.iterdir())
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["training"]["world_size"] == 2 and cfg["training"]["step"] == 6
    assert cfg["training"]["tokens"] == 6 * 2 * 8 * 32  # both ranks' batches count
    assert [int(r["step"]) for r in read_log(out)] == [3, 6]  # one writer: rank 0


@pytest.mark.slow
def test_grid_writes_table(tiny_corpus, tmp_path):
    out = tmp_path / "grid"
    argv = ["--config", CONFIG, "--seq-len", "16,32", "--batch-size", "4", "--budget-tokens", "1280",
            "--out", str(out), *[o for o in tiny_overrides(tiny_corpus, tmp_path / "unused")
                                 if not o.startswith(("--data.seq_len", "--model.block_size", "--train.batch_size",
                                                      "--train.max_steps", "--train.eval_interval", "--train.out"))]]
    assert grid.main(argv) == 0
    with open(out / "grid.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(int(r["seq_len"]), int(r["batch_size"]), int(r["max_steps"])) for r in rows] == [(16, 4, 20), (32, 4, 10)]
    for r in rows:
        assert r["status"] == "ok" and float(r["val_loss"]) > 0 and int(r["tokens_per_s"]) > 0
        assert float(r["peak_memory_mb"]) > 50  # a python process with torch holds far more than this
    assert (out / "grid.png").stat().st_size > 0 and "| 16 | 4 | 20 |" in (out / "grid.md").read_text()
    assert (out / "sl32_bs4" / "model.safetensors").exists()


def test_init_warm_starts_from_a_trained_model(trained, tiny_corpus, tmp_path):
    """--init copies the trained weights into a model with a longer context and a vocabulary with new
    tokens (the FIM markers): rows of known tokens carry over, positions tile, and training goes on from
    the trained loss rather than from a uniform guess."""
    import torch
    from safetensors.torch import load_file

    out = tmp_path / "warm"
    over = {"train.init": str(trained), "model.block_size": 64, "data.seq_len": 64, "data.fim_rate": 0.5,
            "train.max_steps": 10, "train.eval_interval": 10, "train.lr": 1e-4}
    assert main(["--config", CONFIG, *tiny_overrides(tiny_corpus, out, **over)]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"]["block_size"] == 64 and cfg["vocab"]["fim"] is True
    old, new = load_file(trained / "model.safetensors"), load_file(out / "model.safetensors")
    v_old = json.loads((trained / "config.json").read_text())["vocab"]["size"]
    assert new["transformer.wte.weight"].shape[0] == v_old + 4
    # after 10 small steps the known rows are still close to the trained ones, far from a fresh init
    drift = (new["transformer.wte.weight"][:v_old].float() - old["transformer.wte.weight"].float()).abs().mean()
    assert drift < 0.25 * old["transformer.wte.weight"].float().abs().mean()
    wpe_old, wpe_new = old["transformer.wpe.weight"].float(), new["transformer.wpe.weight"].float()
    assert torch.allclose(wpe_new[32:], wpe_new[:32], atol=0.05) and torch.allclose(wpe_new[:32], wpe_old, atol=0.05)
    first_val = float(read_log(out)[0]["val_loss"])
    scratch = tmp_path / "scratch"
    assert main(["--config", CONFIG, *tiny_overrides(tiny_corpus, scratch, **{**over, "train.init": ""})]) == 0
    assert first_val < float(read_log(scratch)[0]["val_loss"]) - 0.5


def test_init_refuses_another_architecture(trained, tiny_corpus, tmp_path, capsys):
    from maia.errors import MaiaError
    from training.config import load_config
    from training.train import train

    args = tiny_overrides(tiny_corpus, tmp_path / "x", **{"train.init": str(trained), "model.n_layer": 2})
    with pytest.raises(MaiaError, match="n_layer"):
        train(load_config(CONFIG, args))
    assert main(["--config", CONFIG, *args]) == 1  # the command line: one line, exit 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "n_layer" in err[0]


@pytest.mark.slow
def test_a_killed_run_resumes_and_its_curve_joins_up(tiny_corpus, tmp_path):
    """SIGKILL at a random moment after a few checkpoints; --resume goes on from the last whole
    checkpoint, the log has no repeated or missing stretch, and no temporary file is left behind."""
    import time

    out = tmp_path / "killed"
    over = {"train.max_steps": 100000, "train.eval_interval": 5, "train.eval_batches": 1}
    cmd = [sys.executable, "-m", "training.train", "--config", CONFIG, *tiny_overrides(tiny_corpus, out, **over)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and not ((out / "log.csv").exists() and len(read_log(out)) >= 3):
        time.sleep(0.05)
    time.sleep(0.37)  # somewhere inside the next interval, perhaps mid-save
    proc.kill()
    proc.wait()
    saved = json.loads((out / "config.json").read_text())["training"]["step"]
    logged = [int(r["step"]) for r in read_log(out)]
    assert logged and logged[-1] <= saved
    assert main(["--config", CONFIG, *tiny_overrides(tiny_corpus, out, **{**over, "train.max_steps": saved + 10,
                                                                         "train.resume": True})]) == 0
    steps = [int(r["step"]) for r in read_log(out)]
    assert steps == sorted(set(steps)) and steps[-1] == saved + 10  # no step twice, and it went on
    assert all(b - a <= 10 for a, b in itertools.pairwise(steps))  # at most one interval lost
    assert not list(out.glob(".*.tmp"))


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "tokens.npy").write_bytes(b"\x93NUMPY garbage"), r"tokens\.npy: not a readable token array"),
    (lambda d: (d / "tokens.npy").write_bytes((d / "tokens.npy").read_bytes()[:200]), r"tokens\.npy: not a readable"),
    (lambda d: np.save(d / "tokens.npy", np.zeros((4, 4), np.float32)), r"expected a 1-D integer array"),
    (lambda d: np.save(d / "tokens.npy", np.full(10, 60000, np.uint16)), r"index and tokens\.npy disagree"),
    (lambda d: (d / "index.json").write_text("{not json"), r"index\.json or vocab\.json unreadable"),
    (lambda d: (d / "index.json").write_text('[{"path": "x"}]'), r"piece 0 lacks start, tokens or split"),
])
def test_a_corrupt_corpus_is_one_line_for_train_and_evaluate(trained, tiny_corpus, tmp_path, capsys, damage, message):
    """A damaged tokens.npy or index.json stops training.train and training.evaluate before any model is built,
    with one line naming the file."""
    import shutil

    from training.evaluate import main as evaluate_main

    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, corpus)
    damage(corpus)
    assert main(["--config", CONFIG, *tiny_overrides(corpus, tmp_path / "run")]) == 1
    assert evaluate_main(["--model", str(trained), "--data", str(corpus), "--continuations", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(re.search(message, line) for line in err), err
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_token_ids_outside_the_vocabulary_are_caught(tiny_corpus, tmp_path, capsys):
    import shutil

    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, corpus)
    tokens = np.load(corpus / "tokens.npy")
    tokens[5] = 60000
    np.save(corpus / "tokens.npy", tokens)
    assert main(["--config", CONFIG, *tiny_overrides(corpus, tmp_path / "run")]) == 1
    assert "token id 60000 is outside the vocabulary" in capsys.readouterr().err

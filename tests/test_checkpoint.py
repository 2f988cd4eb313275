"""Tests for maia/checkpoint.py: round trips per model and dtype, tied weights, and each broken folder."""

import json

import pytest
import torch
from helpers import TINY, tiny_model

from maia.checkpoint import CheckpointError, list_models, load_model, resolve_model, save_model
from maia.vocab import Vocab

VOCAB = Vocab(composers=("Bach", "Chopin"))
V = len(VOCAB)


def saved(folder, kind="gpt", dtype=None, extra=None):
    """A tiny model of `kind`, saved to `folder`."""
    model = tiny_model(kind, VOCAB)
    save_model(folder, model, kind, model.config, VOCAB, extra=extra, dtype=dtype)
    return model


def logits(model):
    idx = torch.arange(2 * 12).remainder(V).view(2, 12)
    with torch.no_grad():
        return model(idx)


@pytest.mark.parametrize("kind", TINY)
def test_round_trip_fp32_exact(tmp_path, kind):
    model = saved(tmp_path / "m", kind, dtype=None, extra={"train": {"lr": 1e-3}, "val_loss": 1.5})
    loaded, vocab, cfg = load_model(tmp_path / "m")
    assert not loaded.training
    assert type(loaded) is type(model) and loaded.config == model.config
    assert vocab.itos == VOCAB.itos
    assert cfg["format"] == "maia-model/1" and cfg["kind"] == kind
    assert cfg["train"] == {"lr": 1e-3} and cfg["val_loss"] == 1.5
    assert torch.equal(logits(loaded), logits(model))


@pytest.mark.parametrize("kind", TINY)
def test_round_trip_fp16_close(tmp_path, kind):
    model = saved(tmp_path / "m", kind)  # the default: float16 on disk
    loaded, _, _ = load_model(tmp_path / "m", dtype=torch.float32)
    assert next(loaded.parameters()).dtype == torch.float32
    torch.testing.assert_close(logits(loaded), logits(model), atol=2e-3, rtol=1e-2)
    half, _, _ = load_model(tmp_path / "m", dtype=torch.float16)
    assert next(half.parameters()).dtype == torch.float16


def test_fp16_file_is_half_size(tmp_path):
    saved(tmp_path / "a", dtype=None)
    saved(tmp_path / "b", dtype=torch.float16)
    a, b = (tmp_path / "a/model.safetensors").stat().st_size, (tmp_path / "b/model.safetensors").stat().st_size
    assert b < 0.55 * a


def test_tied_weights_stay_tied(tmp_path):
    saved(tmp_path / "m")
    loaded, _, _ = load_model(tmp_path / "m")
    assert loaded.lm_head.weight is loaded.transformer.wte.weight
    with torch.no_grad():
        loaded.transformer.wte.weight[3, 0] = 7.0
    assert loaded.lm_head.weight[3, 0] == 7.0


def test_extra_may_not_overwrite_reserved_keys(tmp_path):
    with pytest.raises(ValueError, match="reserved"):
        saved(tmp_path / "m", extra={"vocab": {}})


def edit_config(folder, fn):
    path = folder / "config.json"
    cfg = json.loads(path.read_text())
    fn(cfg)
    path.write_text(json.dumps(cfg))


BROKEN = {
    "folder missing": (lambda f: None, "does not exist"),
    "config missing": (lambda f: (f / "config.json").unlink(), "has no config.json"),
    "config not json": (lambda f: (f / "config.json").write_text("{not json"), "not valid JSON"),
    "config not object": (lambda f: (f / "config.json").write_text("[1, 2]"), "JSON object"),
    "key missing": (lambda f: edit_config(f, lambda c: c.pop("vocab")), r"lacks the keys \['vocab'\]"),
    "wrong format": (lambda f: edit_config(f, lambda c: c.update(format="maia-model/9")), "format"),
    "unknown kind": (lambda f: edit_config(f, lambda c: c.update(kind="rnn")), "unknown model kind 'rnn'"),
    "bad model key": (lambda f: edit_config(f, lambda c: c["model"].update(heads=3)), r"unknown keys \['heads'\]"),
    "vocab invalid": (lambda f: edit_config(f, lambda c: c["vocab"].update(size=3)), "vocabulary size mismatch"),
    "vocab garbage": (lambda f: edit_config(f, lambda c: c["vocab"].pop("config")), "invalid vocabulary"),
    "vocab too big": (lambda f: edit_config(f, lambda c: c["model"].update(vocab_size=10)), "vocab_size 10"),
    "weights missing": (lambda f: (f / "model.safetensors").unlink(), "has no model.safetensors"),
    "weights corrupt": (lambda f: (f / "model.safetensors").write_bytes(b"\x00" * 20), "not a readable"),
    "tensor names": (lambda f: edit_config(f, lambda c: c["model"].update(n_layer=3)), r"missing \['transformer.h.2"),
    "tensor shapes": (lambda f: edit_config(f, lambda c: c["model"].update(d_ff=32)), "wrong shape"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_broken_folder_raises(tmp_path, case):
    folder = tmp_path / "broken_model"
    if case != "folder missing":
        saved(folder)
    damage, message = BROKEN[case]
    damage(folder)
    with pytest.raises(CheckpointError, match=message) as err:
        load_model(folder)
    assert "broken_model" in str(err.value)  # the message names the folder


def test_list_and_resolve(tmp_path):
    saved(tmp_path / "beta")
    saved(tmp_path / "alpha", kind="lstm")
    (tmp_path / "not_a_model").mkdir()
    models = list_models(tmp_path)
    assert list(models) == ["alpha", "beta"]
    assert resolve_model("alpha", tmp_path) == tmp_path / "alpha"
    assert resolve_model(tmp_path / "beta", root=tmp_path / "elsewhere") == tmp_path / "beta"
    assert list_models(tmp_path / "elsewhere") == {}
    with pytest.raises(CheckpointError, match="alpha, beta"):
        resolve_model("gamma", tmp_path)

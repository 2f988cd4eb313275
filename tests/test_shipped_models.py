"""The checkpoints in assets/models/: each loads, is lean, has its model card, and the default is the
piano GPT that can fill in the middle."""

from __future__ import annotations

import json
import re

import pytest
import torch
from safetensors import safe_open

from maia.checkpoint import DEFAULT_ROOT, default_model, list_models, load_model

SHIPPED = list_models(DEFAULT_ROOT)


def test_the_default_model_is_the_piano_gpt():
    assert default_model(DEFAULT_ROOT) == "piano"
    cfg = json.loads((SHIPPED["piano"] / "config.json").read_text())
    assert cfg["kind"] == "gpt" and cfg["vocab"].get("fim") is True and cfg["model"]["block_size"] >= 1024
    assert "pop" in cfg["vocab"]["composers"] and "chopin" in cfg["vocab"]["composers"]


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_model_loads_is_lean_and_has_a_card(name):
    folder = SHIPPED[name]
    weights = folder / "model.safetensors"
    assert weights.stat().st_size <= 25 * 2**20
    with safe_open(weights, "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}  # noqa: SIM118 (safe_open is not iterable)
    model, vocab, _cfg = load_model(folder)
    assert model.config.vocab_size == len(vocab)
    card = (folder / "README.md").read_text()
    for words in ("Training data and licenses", "Compute", "Held-out figures", "CC BY-NC-SA 4.0"):
        assert words in card, f"{name}'s card lacks {words!r}"
    ev = json.loads((folder / "eval.json").read_text())
    assert ev["bits_per_note"] < ev["ngram_bits_per_note"]  # better than counting, on held-out works


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_config_names_no_machine_path(name):
    """config.json records the training settings; a path of the machine that trained it (an absolute one,
    /tmp/runs/... on a GPU box) means nothing elsewhere and must not ship."""
    for file in ("config.json", "eval.json"):
        text = (SHIPPED[name] / file).read_text()
        absolute = re.findall(r'"((?:/|~|[A-Za-z]:\\\\)[^"]*)"', text)  # a JSON string that begins like a path
        assert not absolute, f"{name}/{file} names machine paths: {absolute[:3]}"

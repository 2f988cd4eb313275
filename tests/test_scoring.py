"""maia/scoring.py and `python -m maia score`: bits per note with sliding windows, per token kind, and
per-note surprise that adds up to the piece's bits."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from helpers import maia

from maia.checkpoint import load_model
from maia.encoding import encode_ids, read
from maia.scoring import KINDS, note_surprise, remap_ids, score_piece
from maia.vocab import Vocab


@pytest.fixture(scope="module")
def tiny_gpt(tiny_models_dir):
    return load_model(tiny_models_dir / "gpt")


def test_score_piece_adds_up(tiny_gpt, tiny_midi):
    model, vocab, _ = tiny_gpt
    piece = read(tiny_midi, vocab.config)
    r = score_piece(model, vocab, piece, "bach")
    ids = encode_ids(piece, vocab, "bach")
    assert r["notes"] == len(piece) and r["tokens"] == len(ids) - 1
    assert r["bits_per_note"] == pytest.approx(r["bits"] / r["notes"], rel=1e-3)
    assert sum(r["by_kind"].values()) == pytest.approx(r["bits_per_note"], rel=1e-6) and set(r["by_kind"]) == set(KINDS)
    assert len(r["surprise"]) == len(piece) and sum(s["bits"] for s in r["surprise"]) == pytest.approx(r["bits"], abs=0.01)
    assert [(s["onset"] * 12, s["pitch"]) for s in r["surprise"]] == [(float(o), int(p)) for o, p in piece.notes[:, [0, 2]]]


def test_score_piece_matches_one_forward_when_the_piece_fits(tiny_gpt, tiny_midi):
    model, vocab, _ = tiny_gpt
    from dataclasses import replace

    whole = read(tiny_midi, vocab.config)
    piece = replace(whole, notes=whole.notes[:7])
    ids = torch.as_tensor(encode_ids(piece, vocab, None).astype(np.int64))
    assert 20 < len(ids) <= 33
    with torch.no_grad():
        logp = torch.log_softmax(model(ids[None, :-1])[0], -1).gather(-1, ids[1:, None])[:, 0]
    r = score_piece(model, vocab, piece, None, window=32)
    assert r["bits"] == pytest.approx(float(-logp.sum()) / math.log(2), rel=1e-4)


def test_note_surprise_charges_tokens_to_the_next_note():
    v = Vocab()
    ids = v.ids(["v5", "p60", "wait12", "endp60", "p62", "wait6", "endp62", "<end>"])
    s = note_surprise(ids, np.arange(1.0, 9.0), v)
    assert s == [{"onset": 0.0, "pitch": 60, "bits": 3.0}, {"onset": 1.0, "pitch": 62, "bits": 33.0}]


def test_remap_ids_between_vocabularies():
    a, b = Vocab(composers=("bach", "pop")), Vocab(composers=("chopin",), fim=True)
    ids = a.ids(["<composer:pop>", "<start>", "v5", "p60", "wait12", "endp60", "<end>"])
    out = remap_ids(ids, a, b)
    assert b.tokens(out) == ["<composer:unknown>", "<start>", "v5", "p60", "wait12", "endp60", "<end>"]
    assert b.tokens(remap_ids(ids, a, b, composer="chopin"))[0] == "<composer:chopin>"


def test_cli_score_json(tiny_models_dir, tiny_midi, tmp_path):

    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"MThd garbage")
    out = maia("score", str(tiny_midi), str(bad), "--model", "gpt", "--json", models_dir=tiny_models_dir)
    assert out.returncode == 1 and "1 of 2 files could not be scored" in out.stderr and "Traceback" not in out.stderr
    good, broken = json.loads(out.stdout)
    assert good["file"] == str(tiny_midi) and good["notes"] == 12 and good["bits_per_note"] > 0
    assert set(good) >= {"file", "notes", "tokens", "bits", "bits_per_note", "bits_per_token", "surprise"}
    assert set(good["surprise"][0]) == {"onset", "pitch", "bits"}
    assert broken["file"] == str(bad) and "error" in broken and "bits" not in broken
    out = maia("score", str(tiny_midi), "--model", "gpt", models_dir=tiny_models_dir)
    assert out.returncode == 0 and "bits/note" in out.stdout and "composer unknown" in out.stdout

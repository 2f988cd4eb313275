"""Tests for training/evaluate.py, the n-gram baseline (training/ngram_lm.py) and maia/metrics.py."""

import json
import math

import numpy as np
import pytest
import torch
from helpers import tiny_model

from maia import metrics
from maia.checkpoint import save_model
from maia.encoding import Piece
from training.data import Corpus
from training.evaluate import evaluate, sliding_window_bits
from training.ngram_lm import NGramLM


@pytest.fixture(scope="module")
def corpus(tiny_corpus):
    return Corpus.load(tiny_corpus)


# ---- evaluate ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["gpt", "lstm"])
def test_evaluate_writes_eval_json(kind, corpus, tiny_corpus, tmp_path):
    model = tiny_model(kind, corpus.vocab, block_size=64)
    extra = {"data": {"data_dir": str(tiny_corpus), "seq_len": 64}, "metrics": {"val_loss_nats": 1.0}}
    save_model(tmp_path, model, kind, model.config, corpus.vocab, extra)
    r = evaluate(tmp_path, continuations=2, tokens=48, prompt_tokens=64)
    saved = json.loads((tmp_path / "eval.json").read_text())
    for key in ("bits_per_token", "bits_per_note", "ngram_bits_per_note", "ngram_order", "ngram_bits_per_token",
                "tokens", "notes", "pieces", "music"):
        assert key in saved, key
    assert saved["pieces"] == 2 and saved["ngram_order"] == 5
    assert saved["tokens"] == sum(len(p) - 1 for p in corpus.pieces("valid"))
    assert saved["notes"] == sum(e["notes"] for e in corpus.entries("valid"))
    # an untrained model is close to uniform over the vocabulary; the n-gram model is far better
    assert r["bits_per_token"] == pytest.approx(math.log2(len(corpus.vocab)), abs=0.2)
    assert r["ngram_bits_per_token"] < r["bits_per_token"] - 2
    assert r["bits_per_note"] == pytest.approx(r["bits_per_token"] * r["tokens"] / r["notes"])
    music = saved["music"]
    assert music["settings"]["continuations"] == 2 and music["settings"]["reference_pieces"] == 2
    for name in ("pitch_class", *metrics.SCALAR_FEATURES):
        assert music[name]["overlap"] is None or 0 <= music[name]["overlap"] <= 1
    assert music["pitch_class"]["paired_overlap"] is None or 0 <= music["pitch_class"]["paired_overlap"] <= 1
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["metrics"]["bits_per_note"] == pytest.approx(r["bits_per_note"])
    assert cfg["metrics"]["val_loss_nats"] == 1.0  # the other metrics are kept


def test_sliding_window_matches_full_context(corpus):
    model = tiny_model("gpt", corpus.vocab, block_size=64)
    pieces = [p[:60] for p in corpus.pieces("valid")]  # shorter than the 64-token window
    bits = sliding_window_bits(model, pieces, window=64, batch_size=1)
    assert len(bits) == sum(len(p) - 1 for p in pieces)
    with torch.no_grad():
        logits = model(torch.from_numpy(pieces[0].astype(np.int64))[None])[0]
    expected = -torch.log_softmax(logits, -1)[:-1].gather(-1, torch.from_numpy(pieces[0][1:].astype(np.int64))[:, None])
    assert np.allclose(bits[: len(pieces[0]) - 1], expected[:, 0].numpy() / math.log(2), atol=1e-5)


def test_sliding_window_scores_each_token_once(corpus):
    model = tiny_model("gpt", corpus.vocab, block_size=64)
    pieces = corpus.pieces("valid")
    full = sliding_window_bits(model, pieces, window=64, stride=32, batch_size=7)
    assert len(full) == sum(len(p) - 1 for p in pieces) and np.isfinite(full).all()
    # the first window's tokens see the same context whatever the stride
    other = sliding_window_bits(model, pieces, window=64, stride=16, batch_size=3)
    assert np.allclose(full[:64], other[:64], atol=1e-5) and not np.allclose(full, other)


# ---- n-gram baseline -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ngram(corpus):
    return NGramLM(len(corpus.vocab), 5, corpus.vocab.pad_id).fit(corpus.pieces("train"))


def test_ngram_prefers_seen_sequences(ngram, corpus):
    seen = corpus.pieces("train")[0]
    rng = np.random.default_rng(0)
    shuffled = np.concatenate([seen[:2], rng.permutation(seen[2:])])  # same tokens, unseen order
    assert ngram.log2_probs(seen).mean() > ngram.log2_probs(shuffled).mean() + 2
    bits, n = ngram.total_bits([seen])
    assert n == len(seen) - 1 and bits == pytest.approx(-ngram.log2_probs(seen).sum())


@pytest.mark.parametrize("order", [1, 3, 5])
def test_ngram_distributions_sum_to_one(order, corpus):
    lm = NGramLM(len(corpus.vocab), order, corpus.vocab.pad_id).fit(corpus.pieces("train"), corpus.vocab, transpose=True)
    piece = corpus.pieces("train")[1]
    for context in ([], list(piece[:1]), list(piece[:30]), [40, 41, 42, 43], list(corpus.pieces("valid")[0][:50])):
        p = lm.distribution(context)
        assert p.shape == (len(corpus.vocab),) and (p > 0).all()
        assert p.sum() == pytest.approx(1.0, abs=1e-9)


def test_ngram_transposition_helps_held_out(corpus):
    plain = NGramLM(len(corpus.vocab)).fit(corpus.pieces("train"))
    keys = NGramLM(len(corpus.vocab)).fit(corpus.pieces("train"), corpus.vocab, transpose=True)
    valid = corpus.pieces("valid")
    assert keys.total_bits(valid)[0] < plain.total_bits(valid)[0]


# ---- musical statistics -----------------------------------------------------------------------------------
def piece(rows, tempo=120.0):
    return Piece(np.array(rows, np.int64).reshape(-1, 4), 12, tempo)


def test_features_of_a_known_piece():
    # C major triad held 12 steps, then a D alone for 12 more: a quarter note (12 steps) lasts 0.5 s at 120 qpm
    p = piece([[0, 12, 60, 80], [0, 12, 64, 80], [0, 12, 67, 80], [12, 12, 74, 80]])
    assert metrics.pitch_range(p) == 14
    assert metrics.polyphony(p) == pytest.approx((12 * 3 + 12 * 1) / 24)
    assert metrics.notes_per_second(p) == pytest.approx(4 / 1.0)
    assert np.allclose(metrics.inter_onset_intervals(p), [0.5])
    h = metrics.pitch_class_histogram(p)
    assert h[0] == h[4] == h[7] == h[2] == 0.25 and h.sum() == pytest.approx(1)
    assert all(math.isnan(v) for v in metrics.features(piece([])).values())


def test_overlap_of_identical_and_disjoint_sets():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, 50)
    assert metrics.kde_overlap(a, a) == pytest.approx(1.0, abs=1e-3)
    assert metrics.kde_overlap(a, a + 100) < 1e-6
    assert 0.2 < metrics.kde_overlap(a, a + 1.5) < 0.8
    assert metrics.kde_overlap([3.0, 3.0], [3.0]) == pytest.approx(1.0, abs=1e-3)  # constant samples
    assert math.isnan(metrics.kde_overlap([], [1.0]))
    assert metrics.histogram_overlap([1, 1, 0], [2, 2, 0]) == pytest.approx(1.0)
    assert metrics.histogram_overlap([1, 0], [0, 1]) == 0.0


def test_compare_identical_sets():
    rng = np.random.default_rng(1)
    pieces = []
    for _ in range(6):
        n = int(rng.integers(10, 40))
        onset = np.sort(rng.integers(0, 200, n))
        pieces.append(piece(np.stack([onset, rng.integers(1, 24, n), rng.integers(40, 90, n), np.full(n, 70)], 1)))
    out = metrics.compare(pieces, pieces)
    for name in ("pitch_class", *metrics.SCALAR_FEATURES):
        assert out[name]["overlap"] == pytest.approx(1.0, abs=1e-3), name


def test_no_write_leaves_the_model_folder_as_it_was(corpus, tiny_corpus, tmp_path, capsys):
    """--no-write prints the tables (a trial of other sampling settings, say) and changes no file of the model."""
    from training.evaluate import main

    model = tiny_model("gpt", corpus.vocab, block_size=64)
    save_model(tmp_path, model, "gpt", model.config, corpus.vocab, {"data": {"data_dir": str(tiny_corpus)}})
    (tmp_path / "eval.json").write_text('{"kept": true}')
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    args = ["--model", str(tmp_path), "--continuations", "1", "--tokens", "16", "--prompt-tokens", "32", "--no-write"]
    assert main(args) == 0
    assert main(["--model", str(tmp_path), "--long-context", "32,64", "--min-tokens", "1", "--no-write"]) == 0
    out = capsys.readouterr().out
    assert "bits/note" in out and "| 64 |" in out and "wrote" not in out
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert main(args[:-1]) == 0  # without it, the same run writes
    assert json.loads((tmp_path / "eval.json").read_text()).keys() >= {"bits_per_note", "music"}


def test_music_statistics_compare_the_same_prompts(corpus):
    """The real continuations compared are those of the prompts sampled, spread over the held-out pieces
    (the first few would all be one composer): with 1 continuation, 1 reference piece, not all of them."""
    from training.evaluate import music_statistics

    model = tiny_model("gpt", corpus.vocab, block_size=64)
    pieces, entries = corpus.pieces("valid"), corpus.entries("valid")
    one = music_statistics(model, corpus.vocab, pieces, entries, 1, 16, prompt_tokens=32)
    assert one["settings"]["reference_pieces"] == 1
    many = music_statistics(model, corpus.vocab, pieces * 4, entries * 4, 3, 16, prompt_tokens=32)
    assert many["settings"]["reference_pieces"] == 3  # 3 of 8 usable: spread, each once

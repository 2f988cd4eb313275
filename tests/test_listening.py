"""Tests for training/listening.py: the sampling settings, the prompt cut, the table, and one small
listening run of a tiny random model on hand-made held-out pieces."""

import math

import numpy as np
import pytest
import torch

from maia import listener
from maia.checkpoint import load_model
from maia.encoding import Piece, encode_ids
from maia.errors import InputError
from maia.generate import SamplingConfig, time_steps
from maia.vocab import Vocab
from training import listening as ls

VOCAB = Vocab()


# ---- settings ------------------------------------------------------------------------------------------
def test_parse_settings_gives_labels_and_configs():
    got = ls.parse_settings("top_k=5; top_k=0,min_p=0.05; guards=off")
    assert [label for label, _ in got] == ["top_k=5", "top_k=0,min_p=0.05", "guards=off"]
    default = SamplingConfig()
    assert got[0][1] == SamplingConfig(top_k=5)
    assert got[1][1] == SamplingConfig(top_k=0, min_p=0.05)
    assert isinstance(got[1][1].top_k, int)
    off = got[2][1]
    assert off.max_hold_beats is None and off.max_loop_beats is None
    assert off == SamplingConfig(max_hold_beats=None, max_loop_beats=None)  # everything else as by default
    assert default.max_hold_beats is not None and default.max_loop_beats is not None  # so "off" changed them


def test_parse_settings_spacing_none_guards_on_and_a_base():
    got = ls.parse_settings(" top_k = 50 , top_p = 0.9 ;; guards=on ; top_p=none,seed=3,guards=off; ",
                            base=SamplingConfig(temperature=0.8, top_p=0.5))
    assert [label for label, _ in got] == ["top_k = 50 , top_p = 0.9", "guards=on", "top_p=none,seed=3,guards=off"]
    assert got[0][1] == SamplingConfig(temperature=0.8, top_k=50, top_p=0.9)
    assert got[1][1] == SamplingConfig(temperature=0.8, top_p=0.5)  # on: the base's guards
    assert got[2][1] == SamplingConfig(temperature=0.8, top_p=None, seed=3, max_hold_beats=None, max_loop_beats=None)
    assert ls.parse_settings("") == []


@pytest.mark.parametrize("text, message", [
    ("guards=maybe", "guards=on or guards=off, not 'maybe'"),
    ("top_k=5; topk=5", "unknown sampling setting 'topk' in 'topk=5'"),
    ("top_k=99", "top-k must be 0..50, not 99"),
    ("min_p=1.5", "min-p must be in"),
    ("max_hold_beats=0", "max_hold_beats must be positive"),
    ("top_k=five", "top_k must be a number"),
    ("temperature=", "temperature must be a number"),
])
def test_bad_settings_raise_input_error(text, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(".", r"\.")):
        ls.parse_settings(text)


# ---- cutting a piece at a time -------------------------------------------------------------------------
def test_cut_at_splits_at_a_time():
    toks = ["<composer:unknown>", "<start>", "v5", "p60", "wait12", "endp60", "p62", "wait12", "endp62", "wait24",
            "p64", "wait6", "endp64"]
    ids = VOCAB.ids(toks)
    assert ls.cut_at(ids, 0, VOCAB) == 0
    assert ls.cut_at(ids, 12, VOCAB) == toks.index("endp60")  # the first token at step 12
    assert ls.cut_at(ids, 13, VOCAB) == toks.index("endp62")  # the next token at or after step 13 (step 24)
    assert ls.cut_at(ids, 30, VOCAB) == toks.index("p64")  # inside the long wait: after it, at step 48
    assert ls.cut_at(ids, 54, VOCAB) == toks.index("endp64")  # at the very end of the time
    assert ls.cut_at(ids, 55, VOCAB) == len(ids)  # past it: the whole piece is before it
    for steps in (12, 13, 30):
        i = ls.cut_at(ids, steps, VOCAB)
        assert time_steps(ids[:i], VOCAB) >= steps > time_steps(ids[:i], VOCAB) - 24  # at most one wait past


def test_cut_at_counts_the_waits_inside_merge_tokens():
    base = Vocab()
    merged = Vocab(merges=((base.stoi["p60"], base.stoi["wait12"]),))  # <m:p60+wait12>
    m = merged.base_size
    ids = [*merged.ids(["<start>", "v5"]), m, *merged.ids(["endp60"]), m, *merged.ids(["endp60", "p67"])]
    assert ls.cut_at(ids, 12, merged) == 3  # the endp60 after the first 12 steps
    assert ls.cut_at(ids, 24, merged) == 5
    assert ls.cut_at(ids, 25, merged) == len(ids)


# ---- the table -----------------------------------------------------------------------------------------
def fake_measures(x: float) -> dict:
    per = {k: x for k in (*listener.PER_PIECE, "two_pitch_run_max")}
    return {"per_piece": per, "overlap": {k: x / 10 for k in (*listener.DISTRIBUTIONS, "mean")}}


def test_report_is_a_markdown_table_with_real_last():
    result = {"real": fake_measures(1.0), "top_k=5": fake_measures(2.0), "guards=off": fake_measures(3.0)}
    result["guards=off"]["per_piece"]["motif_recurrence"] = float("nan")
    lines = ls.report(result, 4, 12.0, 24.0).splitlines()
    assert lines[0].startswith("4 held-out prompts (their first 12 s), continued for 24 s")
    assert lines[2] == "| | top_k=5 | guards=off | real |"
    assert lines[3] == "|---|---:|---:|---:|"
    rows = lines[4:]
    assert len(rows) == len(ls.ROWS) + len(listener.DISTRIBUTIONS) + 1
    assert all(r.startswith("| ") and r.endswith(" |") and r.count("|") == 5 for r in rows)
    assert "| notes per second | 2.0 | 3.0 | 1.0 |" in rows
    assert "| motif recurrence (4-note top-line patterns found in the prompt) | 2.00 | nan | 1.00 |" in rows
    assert "| overlap with the real notes: chord size | 0.20 | 0.30 | 0.10 |" in rows
    assert rows[-1] == "| overlap with the real notes: mean | 0.20 | 0.30 | 0.10 |"


# ---- one small listening run ---------------------------------------------------------------------------
def held_out_piece(seed: int, seconds: float = 12.0) -> Piece:
    """A piece of eighth notes over a bass every half bar, ``seconds`` long at 120 qpm."""
    rng = np.random.default_rng(seed)
    steps = int(seconds * 24)
    tune = [(t, 6, int(p), 80) for t, p in zip(range(0, steps, 6), 60 + np.cumsum(rng.integers(-3, 4, steps // 6)),
                                               strict=True)]
    bass = [(t, 24, int(rng.integers(36, 48)), 60) for t in range(0, steps, 24)]
    n = np.array(tune + bass, np.int64)
    return Piece(n[np.lexsort((n[:, 2], n[:, 0]))], 12, 120.0)


@pytest.mark.usefixtures("one_torch_thread")
def test_listen_end_to_end_on_a_tiny_model(tiny_models_dir):
    model, vocab, _ = load_model(tiny_models_dir / "gpt", dtype=torch.float32)
    pieces = [held_out_piece(s) for s in range(3)] + [held_out_piece(9, seconds=5.0)]  # the last is too short
    ids = [encode_ids(p, vocab, "bach") for p in pieces]
    entries = [{"composer": "bach", "seconds": p.duration_seconds, "tempo": 120.0} for p in pieces]
    cases = ls.cases(ids, entries, vocab, 2, prompt_seconds=3.0, seconds=2.0, tempo_of=lambda p, e: 1 / 0)
    assert len(cases) == 2
    for c in cases:
        assert c.steps == 48 and c.prompt.steps >= 72  # 2 s and 3 s at 24 steps a second
        assert c.prompt.ids[0] == vocab.composer_id("bach") and vocab.end_id not in c.prompt.ids
        assert len(c.real) and c.real.notes[:, 0].min() == 0 and c.real.notes[:, 0].max() < c.steps
        assert (c.real.notes[:, 0] + c.real.notes[:, 1]).max() <= c.steps  # cut at the span's end

    result = ls.listen(model, vocab, cases, ls.parse_settings("top_k=5; guards=off"))
    assert list(result) == ["real", "top_k=5", "guards=off"]
    real = result["real"]
    assert all(real["overlap"][k] == pytest.approx(1.0) for k in real["overlap"])  # the reference against itself
    assert math.isnan(real["per_piece"]["unreleased"])  # cut from longer pieces: not counted
    assert result["top_k=5"]["per_piece"]["unreleased"] == 0  # the guards' closing rule
    for label in ("top_k=5", "guards=off"):
        r = result[label]
        assert set(r["overlap"]) == {*listener.DISTRIBUTIONS, "mean"}
        assert all(0 <= v <= 1 for v in r["overlap"].values() if not math.isnan(v))
        assert r["per_piece"]["notes_per_second"] > 0
    # One continuation by hand, the guards off: it spans exactly the real continuation's time, then ends.
    _, new = ls.continue_case(model, vocab, cases[0], SamplingConfig(max_hold_beats=None, max_loop_beats=None))
    assert new[-1] == vocab.end_id and time_steps(new, vocab) == cases[0].steps
    table = ls.report(result, len(cases), 3.0, 2.0)
    assert "| | top_k=5 | guards=off | real |" in table


def test_a_guarded_continuation_spans_its_time(tiny_models_dir):
    model, vocab, _ = load_model(tiny_models_dir / "gpt", dtype=torch.float32)
    ids = [encode_ids(held_out_piece(0), vocab, "bach")]
    case = ls.cases(ids, [{"composer": "bach", "seconds": 12.0, "tempo": 120.0}], vocab, 1, 3.0, 2.0, None)[0]
    _, new = ls.continue_case(model, vocab, case, SamplingConfig())
    assert listener.unreleased_notes(case.prompt.ids + new, vocab) == 0  # this holds: the keys are released
    assert new[-1] == vocab.end_id and time_steps(new, vocab) == case.steps  # this does not


@pytest.mark.usefixtures("one_torch_thread")
def test_endings_and_forms_end_to_end_on_a_tiny_model(tiny_models_dir):
    """training/endings.py on one hand-made held-out prompt: every way closes, the ones with a cadence end on
    the tonic, and the tables name every way and measure."""
    from training import endings as en

    model, vocab, _ = load_model(tiny_models_dir / "fim", dtype=torch.float32)
    ids = [encode_ids(held_out_piece(0), vocab, "bach")]
    cases = ls.cases(ids, [{"composer": "bach", "seconds": 12.0, "tempo": 120.0}], vocab, 1, 4.0, 4.0, None)
    r = en.endings(model, vocab, cases, SamplingConfig(top_k=20), bars=3)
    assert list(r) == list(en.WAYS) and all(r[w]["n"] == 1 for w in en.WAYS)
    for way in ("chord", "fim", "fim+rerank", "homecoming"):
        assert r[way]["tonic_bass"] == 1.0, way
    assert all(math.isfinite(r[w]["bits_per_note"]) and r[w]["bits_per_note"] > 0 for w in en.WAYS)
    table = en.report(r, 3)
    assert "| | none | chord | fim | fim+rerank | homecoming |" in table and "whole continuation" in table
    f = en.forms(model, vocab, cases, SamplingConfig(top_k=20), bars=6, theme_bars=1)
    assert list(f) == [*en.FORMS, "real"] and "motif recurrence in the last quarter" in en.report_forms(f, 6)
    assert f["none"]["tokens"] > 0 and 0 <= f["ABA"]["late_motif_recurrence"] <= 1

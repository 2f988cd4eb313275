"""maia/controls.py: the logit masks for key, register and density, exact at full strength and inert at 0."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import tiny_model

from maia.controls import SCALES, Controls, control_bias, in_scale_share, parse_key
from maia.errors import InputError
from maia.generate import SamplingConfig, generate_ids, ids_to_piece
from maia.merges import learn_merges
from maia.vocab import Vocab

VOCAB = Vocab(composers=("bach",))


def on_id(p: int) -> int:
    return VOCAB.on_offset + p


def test_key_lock_at_full_strength_forbids_exactly_the_notes_outside_the_scale():
    bias = control_bias(Controls(key=(2, "minor"), key_strength=1.0), VOCAB, len(VOCAB))
    for p in range(VOCAB.config.pitch_lo, VOCAB.config.pitch_hi + 1):
        inside = (p - 2) % 12 in SCALES["minor"]
        assert bias[on_id(p)] == (0.0 if inside else float("-inf")), p
    others = [i for i in range(len(VOCAB)) if not VOCAB.on_offset + VOCAB.config.pitch_lo <= i <= VOCAB.on_offset + VOCAB.config.pitch_hi]
    assert (bias[others] == 0).all()  # note-offs, waits, dynamics, specials untouched


def test_strength_zero_and_defaults_change_nothing():
    assert not Controls(key=(0, "major"), key_strength=0.0).active and not Controls().active
    assert (control_bias(Controls(key=(0, "major"), key_strength=0.0), VOCAB, len(VOCAB)) == 0).all()
    half = control_bias(Controls(key=(0, "major"), key_strength=0.5), VOCAB, len(VOCAB))
    assert half[on_id(61)] == pytest.approx(math.log(0.5)) and half[on_id(60)] == 0


def test_register_and_density():
    bias = control_bias(Controls(lowest=48, highest=72, density=2.0), VOCAB, len(VOCAB) + 3)
    assert bias[on_id(47)] == float("-inf") and bias[on_id(73)] == float("-inf")
    half = math.log(2) / 2  # density 2: note-ons x sqrt(2), waits / sqrt(2)
    assert bias[on_id(48)] == pytest.approx(half) and bias[on_id(72)] == pytest.approx(half)
    assert bias[VOCAB.wait_offset + 12] == pytest.approx(-half) and bias[VOCAB.wait_offset + 1] == pytest.approx(-half)
    assert bias[VOCAB.off_offset + 30] == 0 and (bias[len(VOCAB):] == 0).all()


def test_merge_tokens_get_the_product_of_their_note_ons():
    seq = np.array(VOCAB.ids(["<composer:bach>", "<start>"] + ["p60", "p61", "wait6", "endp60", "endp61"] * 50), np.int64)
    merged = learn_merges([seq], VOCAB, 3)
    bias = control_bias(Controls(key=(0, "major"), key_strength=0.75, density=2.0), merged, len(merged))
    for k, run in enumerate(merged.merge_runs):
        ons = [t - VOCAB.on_offset for t in run if VOCAB.on_offset + 21 <= t <= VOCAB.on_offset + 108]
        waits = [t for t in run if VOCAB.wait_offset < t <= VOCAB.wait_offset + VOCAB.config.max_wait]
        expected = sum(math.log(math.sqrt(2.0) * (0.25 if p % 12 not in SCALES["major"] else 1.0)) for p in ons)
        expected -= len(waits) * math.log(2.0) / 2
        assert float(bias[merged.base_size + k]) == pytest.approx(expected)


@pytest.mark.parametrize("bad", [dict(key=(12, "major")), dict(key=(0, "dorian")), dict(key_strength=1.5),
                                 dict(lowest=60, highest=65), dict(density=10.0),
                                 dict(key_from=-1), dict(key_from=2.5)])
def test_invalid_controls_are_refused(bad):
    with pytest.raises(InputError):
        Controls(**bad).validate()


def test_parse_key():
    assert parse_key("D minor") == (2, "minor") and parse_key("f# major") == (6, "major")
    assert parse_key("Bb minor") == (10, "minor") and parse_key("") is None
    with pytest.raises(InputError, match="tonic and a mode"):
        parse_key("H dorian")


@pytest.mark.usefixtures("one_torch_thread")
def test_sampling_with_controls_stays_in_key_and_register():
    model = tiny_model("gpt", VOCAB, block_size=64, n_layer=1)
    prompt = [VOCAB.composer_id("bach"), VOCAB.start_id, VOCAB.on_offset + 62]  # D: in D minor and the register
    cfg = SamplingConfig(max_new_tokens=300, min_new_tokens=300, top_k=50, seed=1)  # no <end>: 300 tokens
    free = ids_to_piece(generate_ids(model, prompt, cfg, VOCAB)[0], VOCAB).notes
    assert in_scale_share(free, (2, "minor")) < 0.9  # a random model ignores keys...
    locked = ids_to_piece(generate_ids(model, prompt, cfg, VOCAB, Controls(key=(2, "minor"), lowest=50, highest=80))[0],
                          VOCAB).notes
    assert len(locked) > 10 and in_scale_share(locked, (2, "minor")) == 1.0  # ...the lock holds it
    assert locked[:, 2].min() >= 50 and locked[:, 2].max() <= 80


@pytest.mark.usefixtures("one_torch_thread")
def test_a_late_key_lock_holds_only_from_its_step():
    """key_from: the notes before that step of the continuation are free, the notes from it are in the key
    (the homecoming before an ending, maia/form.py)."""
    model = tiny_model("gpt", VOCAB, block_size=64, n_layer=1)
    prompt = [VOCAB.composer_id("bach"), VOCAB.start_id, VOCAB.on_offset + 62]
    cfg = SamplingConfig(max_new_tokens=400, min_new_tokens=400, top_k=50, seed=0)
    start = 24  # half a bar of 4/4 (this random model waits a lot)
    notes = ids_to_piece(generate_ids(model, prompt, cfg, VOCAB, Controls(key=(2, "minor"), key_from=start))[0],
                         VOCAB).notes
    before, after = notes[notes[:, 0] < start], notes[notes[:, 0] >= start]  # before: with the prompt's D
    assert len(before) >= 8 and len(after) > 40, (len(before), len(after))
    assert in_scale_share(before, (2, "minor")) < 0.9  # free before the step...
    assert in_scale_share(after, (2, "minor")) == 1.0  # ...locked from it

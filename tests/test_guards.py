"""Tests for maia/guards.py, the collapse guards of the sampling loop: on the Guards object itself, then
through maia.generate with the tiny random models (conftest's tiny_models_dir)."""

import math

import pytest
import torch
from helpers import biased_model

from maia import listener
from maia.checkpoint import load_model
from maia.generate import SamplingConfig, build_prompt, generate_ids, ids_to_piece
from maia.guards import RAMP, Guards
from maia.vocab import Vocab

VOCAB = Vocab()
SPQ = VOCAB.config.steps_per_quarter  # 12
OFF = dict(max_hold_beats=None, max_loop_beats=None)  # the guards off: the model alone
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def guards(rows=1, hold=None, loop=None, prompt=(), vocab=VOCAB) -> Guards:
    return Guards(vocab, rows, len(vocab), "cpu", hold, loop, vocab.ids(prompt))


def play(g: Guards, *tokens: str, row_tokens=None) -> None:
    """Feeds the same tokens to every row (or, with ``row_tokens``, one list per row, None for nothing)."""
    for t in tokens:
        g.update([VOCAB.stoi[t]] * len(g.now))
    for step in row_tokens or ():
        g.update([None if t is None else VOCAB.stoi[t] for t in step])


def on(p):
    return VOCAB.on_offset + p


def off(p):
    return VOCAB.off_offset + p


def pushes(g: Guards, row: int = 0, **kw) -> dict:
    """{id: value} of the non-zero entries of one row of the guards' bias, <end> left out (whether <end> is
    barred while a key is down is tested on its own)."""
    found = g.bias(**kw)
    if found is None:
        return {}
    b = found[0][row]
    return {int(i): float(b[i]) for i in torch.nonzero(b).flatten() if int(i) != VOCAB.end_id}



# ---- hanging keys --------------------------------------------------------------------------------------
def test_a_key_held_past_the_limit_gets_a_growing_release_bias():
    g = guards(rows=2, hold=2.0)  # 2 beats: 24 steps
    play(g, "p60", "wait12")
    play(g, row_tokens=[["p64", None]])  # row 0 also holds 64, struck a beat later
    play(g, "wait12")
    assert g.held == [{60: 0, 64: 12}, {60: 0}]
    assert pushes(g) == pushes(g, 1) == {}  # 60 held exactly 2 beats: not past the limit
    play(g, "wait6")
    assert not g.bias()[1].any()  # nothing is replaced: the bias adds to the model's logits
    # Half a beat past: RAMP / 2 on the note-off of 60, in both rows.
    assert pushes(g) == pushes(g, 1) == {off(60): RAMP / 2}
    play(g, "wait12")
    # A beat later the bias has grown by RAMP; 64 is now half a beat past its own limit, in row 0 only.
    assert pushes(g) == {off(60): 1.5 * RAMP, off(64): RAMP / 2}
    assert pushes(g, 1) == {off(60): 1.5 * RAMP}
    play(g, "endp60", "endp64")
    assert g.bias() is None  # released: nothing applies


def test_a_key_struck_again_counts_from_its_new_strike():
    g = guards(hold=1.0)
    play(g, "p60", "wait12", "p60", "wait6")  # struck again while down, 6 steps ago
    assert g.held == [{60: 12}]
    assert pushes(g) == {}
    play(g, "wait12")
    assert pushes(g) == {off(60): RAMP / 2}


def test_the_piece_cannot_end_while_a_key_is_down():
    g = guards(hold=8.0, loop=4.0)
    play(g, "p60", "wait3")
    found = g.bias()
    assert found is not None and found[0][0, VOCAB.end_id] == -math.inf
    play(g, "endp60")
    assert g.bias() is None  # nothing down: <end> is the model's choice


# ---- loops ---------------------------------------------------------------------------------------------
def trill(g: Guards, strikes: int, pitches=(60, 62), step: int = 3) -> None:
    for i in range(strikes):
        p = pitches[i % len(pitches)]
        play(g, f"p{p}", f"wait{step}", f"endp{p}")


def test_a_two_pitch_loop_longer_than_the_limit_has_its_note_ons_penalised():
    g = guards(loop=1.0)  # one beat: 12 steps
    trill(g, 4)  # onsets at 0, 3, 6, 9; now 12
    assert g.loop_run(0) == (12, {60, 62})
    assert g.bias() is None  # exactly one beat
    trill(g, 1)  # now 15: a quarter beat past
    assert not g.bias()[1].any()
    assert pushes(g) == {on(60): -RAMP / 4, on(62): -RAMP / 4}
    trill(g, 4)  # now 27: 1.25 beats past
    assert pushes(g) == {on(60): -1.25 * RAMP, on(62): -1.25 * RAMP}
    # Three new pitches end it: the last onsets use 62, 64, 65 and 67.
    play(g, "p64", "wait3", "endp64", "p65", "wait3", "endp65", "p67", "wait3", "endp67")
    assert g.bias() is None


def test_a_chord_struck_over_and_over_is_penalised_after_twice_the_limit():
    g = guards(loop=1.0)
    for _ in range(4):  # C major struck every 6 steps: 24 steps = twice the limit
        play(g, "p60", "p64", "p67", "wait6", "endp60", "endp64", "endp67")
    assert g.bias() is None
    play(g, "p60", "p64", "p67", "wait6", "endp60", "endp64", "endp67")  # now 30: half a beat past
    assert pushes(g) == {on(60): -RAMP / 2, on(64): -RAMP / 2, on(67): -RAMP / 2}


def test_a_varied_line_is_left_alone():
    g = guards(hold=8.0, loop=4.0)  # SamplingConfig's defaults
    for p in [60, 62, 64, 65, 67, 69, 71, 72, 74, 72, 71, 69, 67, 65, 64, 62, 60] * 2:
        play(g, f"p{p}", "wait6", f"endp{p}")
        assert g.bias() is None


def test_a_figure_repeated_with_the_odd_other_note_is_penalised():
    """Six pitches (an arpeggiated D minor figure) with a seventh note every 12.5 beats: the exact loop rules
    never fire, the stagnation rule does once the figure carries 90% of 32 beats' onsets."""
    from maia.guards import STAGNATION

    g = guards(loop=4.0)
    figure = [50, 57, 62, 65, 69, 74]
    beats, fired_at = 0.0, None
    for i in range(20):  # each round 3 beats; every fourth round one E5 more (12.5 beats between them)
        extra = [77] if i % 4 == 0 else []
        for p in figure + extra:
            play(g, f"p{p}", "wait6", f"endp{p}")
        beats += 3 + len(extra) / 2
        found = pushes(g)
        if found:
            fired_at = beats
            assert found == {on(p): -RAMP for p in figure}
            break
    assert fired_at is not None and fired_at >= STAGNATION[1] * 4.0  # not before the window is full
    elapsed = 0.0
    for j in range(i + 1, i + 9):  # the same figure goes on: RAMP more per 4 beats, at most four times RAMP
        extra = [77] if j % 4 == 0 else []
        for p in figure + extra:
            play(g, f"p{p}", "wait6", f"endp{p}")
        elapsed += 3 + len(extra) / 2
        assert pushes(g) == {on(p): -RAMP * min(4.0, 1 + elapsed / 4) for p in figure}
    assert elapsed >= 12  # the cap was reached
    varied = guards(loop=4.0)
    for p in list(range(48, 84)) * 2:  # 36 pitches, 36 beats
        play(varied, f"p{p}", "wait6", f"endp{p}")
        assert varied.bias() is None


# ---- closing -------------------------------------------------------------------------------------------
def test_closing_allows_only_the_held_keys_note_offs():
    g = guards(rows=2, hold=8.0)
    play(g, "v5", "p60", "p64", "wait6")
    play(g, row_tokens=[[None, "endp60"], [None, "endp64"]])  # row 1 releases both
    assert [len(h) for h in g.held] == [2, 0]
    assert pushes(g, tokens_left=4) == {}  # 4 > 2 held + 1: still free
    b, replace = g.bias(tokens_left=3)  # 2 held + 1: time to close
    assert replace.tolist() == [True, False]
    assert torch.isfinite(b[0]).nonzero().flatten().tolist() == [off(60), off(64)]
    assert (b[0, [off(60), off(64)]] == 0).all()
    assert (b[1] == 0).all()  # row 1 holds nothing and has room: free
    # The last token: row 1 holds nothing, so it may strike no key it could not release.
    b, replace = g.bias(tokens_left=1)
    assert replace.tolist() == [True, False]
    assert (b[1, on(21) : on(108) + 1] == -math.inf).all()
    assert (b[1, : on(21)] == 0).all() and (b[1, on(108) + 1 :] == 0).all()
    # A time budget spent (``closing``) closes a row whatever the tokens left.
    b, replace = g.bias(tokens_left=100, closing=torch.tensor([True, False]))
    assert replace.tolist() == [True, False] and torch.isfinite(b[0]).sum() == 2


def test_the_prompt_sets_the_state():
    g = guards(rows=2, hold=1.0, prompt=["<composer:unknown>", "<start>", "v5", "p60", "p64", "wait12", "endp64",
                                         "p67", "wait12"])
    assert g.now == [24, 24] and g.held == [{60: 0, 67: 12}] * 2
    assert pushes(g) == {off(60): RAMP}  # 60: held 2 beats, a beat past the limit
    # A fill-in-the-middle prompt: the state is that of the music before the gap, not after it.
    fim = Vocab(fim=True)
    g = Guards(fim, 1, len(fim), "cpu", 1.0, None, fim.ids(["<composer:unknown>", "<fim:prefix>", "<start>", "p60",
                                                            "wait12", "<fim:suffix>", "endp60", "p72", "wait48",
                                                            "<fim:middle>"]))
    assert g.now == [12] and g.held == [{60: 0}]


# ---- through maia.generate -----------------------------------------------------------------------------
@pytest.fixture(scope="module", params=("gpt", "lstm"))
def tiny(request, tiny_models_dir):
    """(random-init tiny model in float64, so the cached path and a plain forward agree exactly, vocab)."""
    model, vocab, _ = load_model(tiny_models_dir / request.param, dtype=torch.float64)
    return model, vocab


def with_keys_down(vocab):
    """A prompt that ends with four keys down."""
    return build_prompt(vocab, "bach").ids + vocab.ids(["v5", "p60", "p64", "p67", "wait12", "p70", "wait6"])


def test_the_guards_leave_no_key_down_at_the_end(tiny):
    model, vocab = tiny
    prompt = with_keys_down(vocab)
    guarded, raw = [], []
    for seed in range(5):
        ids = generate_ids(model, prompt, SamplingConfig(max_new_tokens=120, seed=seed), vocab)[0]
        guarded.append(listener.unreleased_notes(ids, vocab))
        ids = generate_ids(model, prompt, SamplingConfig(max_new_tokens=120, seed=seed, **OFF), vocab)[0]
        raw.append(listener.unreleased_notes(ids, vocab))
    assert guarded == [0] * 5
    assert min(raw) > 0  # the random model alone leaves keys down: the guards did the releasing


def test_a_model_keen_to_end_releases_its_keys_first(tiny):
    """A model that likes <end>: alone it ends with keys down; guarded, <end> waits for their note-offs."""
    model, vocab = tiny
    keen = biased_model(model, [vocab.end_id], 4.0)
    prompt = with_keys_down(vocab)
    guarded, raw = [], []
    for seed in range(4):
        ids = generate_ids(keen, prompt, SamplingConfig(max_new_tokens=60, seed=seed), vocab)[0]
        guarded.append(listener.unreleased_notes(ids, vocab))
        ids = generate_ids(keen, prompt, SamplingConfig(max_new_tokens=60, seed=seed, **OFF), vocab)[0]
        assert ids[-1] == vocab.end_id and len(ids) < len(prompt) + 60  # alone, it ends early
        raw.append(listener.unreleased_notes(ids, vocab))
    assert guarded == [0] * 4
    assert min(raw) > 0


def test_a_key_the_model_never_releases_is_released_after_the_limit(tiny):
    """A model that strikes 60 and then only waits: alone it holds the key for ever; guarded, it lets go
    a few beats after max_hold_beats (the bias grows by RAMP a beat until it outweighs the habit)."""
    model, vocab = tiny
    habit = biased_model(model, [vocab.stoi["wait12"]], 20.0)
    habit.bias[vocab.stoi["p60"]] = 10.0  # the first token: a piece never opens with silence
    prompt = build_prompt(vocab, "bach").ids
    held_for = {}
    for hold in (2.0, 4.0, None):
        cfg = SamplingConfig(max_new_tokens=40, top_k=1, max_hold_beats=hold, max_loop_beats=None)
        ids = generate_ids(habit, prompt, cfg, vocab)[0]
        assert ids[2] == vocab.stoi["p60"]
        if hold is None:
            assert set(ids[3:]) == {vocab.stoi["wait12"]} and listener.unreleased_notes(ids, vocab) == 1
            continue
        release = ids.index(vocab.stoi["endp60"])
        assert release < 25  # well before the closing rule at the end of the 40 tokens
        held_for[hold] = ids_to_piece(ids, vocab).notes[0, 1] / SPQ  # beats
        assert hold < held_for[hold] < hold + 10
    assert held_for[2.0] < held_for[4.0]


def test_a_two_pitch_loop_is_broken(tiny):
    """A model that only trills on 60 and 62: alone, its longest two-pitch run is the whole piece; guarded,
    the trill stops soon after max_loop_beats (this model then rests: its other habits are note-offs and
    waits)."""
    model, vocab = tiny
    trill_ids = vocab.ids(["p60", "endp60", "p62", "endp62", "wait3"])
    habit = biased_model(model, trill_ids, 8.0)
    prompt = build_prompt(vocab, "bach").ids + vocab.ids(["v5", "p60", "wait3", "endp60"])
    runs, strikes = {}, {}
    for loop in (1.0, None):
        cfg = SamplingConfig(max_new_tokens=300, min_new_tokens=300, seed=1, top_k=5, max_hold_beats=None,
                             max_loop_beats=loop)
        ids = generate_ids(habit, prompt, cfg, vocab)[0]
        piece = ids_to_piece(ids, vocab)
        runs[loop] = listener.longest_two_pitch_run(piece), piece.duration_seconds
        strikes[loop] = len(piece)
    run, seconds = runs[None]
    assert run == pytest.approx(seconds) and run > 6  # all of it one trill
    assert runs[1.0][0] < 3.0  # one beat is half a second at 120 qpm
    assert strikes[1.0] < strikes[None] / 4


def reference(model, vocab, prompt, n, seed, top_k=5):
    """Independent top-k sampling with plain forward passes and maia.generate's documented draws (one
    float64 uniform per step from torch.Generator seeded with ``seed``, the CDF inverted), no guards."""
    u = torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    seq = list(prompt)
    for i in range(n):
        with torch.no_grad():
            logits = model(torch.tensor([seq]))[0, -1].clone()
        logits[vocab.special_ids] = -math.inf  # no <pad>, <start> or composer mid-piece
        top, idx = torch.topk(logits, top_k)
        cdf = torch.softmax(top, -1).cumsum(-1)
        seq.append(int(idx[min(int((cdf < u[i]).sum()), top_k - 1)]))
        if seq[-1] == vocab.end_id:
            break
    return seq


def test_without_limits_generation_is_the_model_alone(tiny):
    model, vocab = tiny
    prompt = with_keys_down(vocab)
    n = model.max_context - len(prompt) if model.max_context else 60  # the GPT's window never slides here
    differs = 0
    for seed in range(3):
        raw = generate_ids(model, prompt, SamplingConfig(max_new_tokens=n, seed=seed, top_k=5, **OFF), vocab)[0]
        assert raw == reference(model, vocab, prompt, n, seed)
        guarded = generate_ids(model, prompt, SamplingConfig(max_new_tokens=n, seed=seed, top_k=5), vocab)[0]
        differs += guarded != raw
    assert differs  # the comparison can tell: with the guards on, some continuation changes


def test_guarded_continuations_end_released_in_every_variation(tiny):
    model, vocab = tiny
    rows = generate_ids(model, with_keys_down(vocab), SamplingConfig(max_new_tokens=60, seed=5, variations=3), vocab)
    assert [listener.unreleased_notes(r, vocab) for r in rows] == [0, 0, 0]
    assert len({tuple(r) for r in rows}) == 3

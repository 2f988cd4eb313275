"""Whole pieces (maia/form.py): lengths in bars and seconds, the cadence in the home key, the form plan."""

import numpy as np
import pytest

from maia import form
from maia.checkpoint import load_model
from maia.compose import compose
from maia.encoding import Piece
from maia.errors import InputError
from maia.generate import SamplingConfig, build_prompt, time_steps

Q = 12  # steps per quarter


@pytest.fixture(scope="module")
def fim(tiny_models_dir):
    model, vocab, _ = load_model(tiny_models_dir / "fim")
    return model, vocab


@pytest.fixture(scope="module")
def plain(tiny_models_dir):
    model, vocab, _ = load_model(tiny_models_dir / "gpt")
    return model, vocab


def d_minor_prompt(ts=(4, 4), bars=1.5):
    """D minor arpeggios over a D bass, ``bars`` bars of ``ts``."""
    bar = form.bar_steps(ts)
    n = int(bars * bar) // 6
    notes = [(0, int(bars * bar), 38, 60)] + [(i * 6, 6, [62, 65, 69, 74][i % 4], 80) for i in range(n)]
    notes = np.array(sorted(notes), np.int64)
    return Piece(notes[np.lexsort((notes[:, 2], notes[:, 0]))], Q, 100.0, ts)


@pytest.mark.parametrize("ts,steps", [((3, 4), 36), ((4, 4), 48), ((6, 8), 36), ((12, 8), 72), (None, 48), ((2, 2), 48)])
def test_bar_steps(ts, steps):
    assert form.bar_steps(ts) == steps


def test_length_runs_to_the_next_bar_line_then_n_bars_or_the_seconds():
    assert form.length_steps(50, (4, 4), 120.0, bars=2) == 46 + 96
    assert form.length_steps(48, (3, 4), 120.0, bars=1) == 24 + 36  # 48 steps is 1 1/3 bars of 3/4
    assert form.length_steps(36, (3, 4), 120.0, bars=1) == 36
    assert form.length_steps(0, None, 120.0, seconds=2.0) == 48  # 2 s at 120 qpm = 4 quarters
    for bad in (dict(bars=0), dict(bars=2.5), dict(seconds=-1.0), dict(), dict(bars=2, seconds=2.0)):
        with pytest.raises(InputError):
            form.length_steps(0, None, 120.0, **bad)


@pytest.mark.parametrize("ts", [(3, 4), (4, 4), (6, 8), (12, 8)])
def test_n_bars_end_exactly_on_the_bar_line_with_a_tonic_chord(fim, ts):
    model, vocab = fim
    piece = d_minor_prompt(ts)
    prompt = build_prompt(vocab, "bach", piece)
    bar = form.bar_steps(ts)
    assert prompt.steps == int(1.5 * bar)
    cfg = SamplingConfig(seed=1, top_k=20)
    ((out, ending),) = compose(model, vocab, prompt, cfg, bars=3, end=True, prompt_piece=piece, candidates=2)
    end = 2 * bar + 3 * bar  # the bar line after the prompt's 1.5 bars, then 3 bars
    assert out.end_step == end  # the final chord is held to the last bar line, nothing sounds past it
    assert out.time_signature == ts
    chord = form.final_chord(out)
    assert chord[0, 0] == end - bar  # struck on the last bar's downbeat
    assert ending.key == (2, "minor") and form.ends_on_tonic(out, (2, "minor"))
    assert int(chord[:, 2].min()) % 12 == 2 and {int(p) % 12 for p in chord[:, 2]} <= {2, 5, 9}
    assert ending.rewritten_bars == 2 and len(ending.candidate_bits) == 2
    assert np.array_equal(out.notes[out.notes[:, 0] < prompt.steps][:3, :3], piece.notes[:3, :3])  # the prompt is kept


@pytest.mark.parametrize("bars", [1, 4])
def test_without_an_ending_the_time_is_filled_exactly(plain, bars):
    model, vocab = plain
    prompt = build_prompt(vocab, "mozart", d_minor_prompt((3, 4), 1.0))
    steps = form.length_steps(prompt.steps, prompt.time_signature, prompt.tempo_qpm, bars=bars)
    rows = form.continue_for(model, vocab, prompt.ids, SamplingConfig(seed=2, variations=2, max_new_tokens=400), steps)
    for ids in rows:
        assert time_steps(ids, vocab) == prompt.steps + steps == 36 + 36 * bars
        assert ids[-1] == vocab.end_id


def test_seconds_are_met_within_a_step(plain):
    model, vocab = plain
    prompt = build_prompt(vocab, "bach", d_minor_prompt())
    ((out, _),) = compose(model, vocab, prompt, SamplingConfig(seed=0), seconds=3.3)
    assert out.end_step <= prompt.steps + round(3.3 * 100.0 * Q / 60)


def test_a_model_without_fill_in_the_middle_still_ends_and_says_so(plain):
    model, vocab = plain
    piece = d_minor_prompt()
    ((out, ending),) = compose(model, vocab, build_prompt(vocab, "bach", piece), SamplingConfig(seed=0), bars=2,
                                    end=True, prompt_piece=piece)
    assert form.ends_on_tonic(out, (2, "minor")) and ending.rewritten_bars == 0
    assert "cannot fill in the middle" in ending.message


def test_the_home_key_is_the_lock_then_the_prompt_then_the_music():
    d_minor = d_minor_prompt()
    assert form.home_key(d_minor, (7, "major")) == (7, "major")
    assert form.home_key(d_minor, None) == (2, "minor")
    assert form.home_key(None, None, d_minor) == (2, "minor")
    assert form.home_key(None, None, None) == (0, "major")


def test_the_cadence_chord_has_the_tonic_in_the_bass_near_the_old_bass():
    before = np.array([[0, 12, 40, 70], [0, 12, 76, 70], [12, 12, 43, 50], [12, 12, 79, 90]], np.int64)
    chord = form.cadence_chord(before, (9, "minor"), 48, 48)  # A minor
    assert int(chord[:, 2].min()) == 45  # the A nearest to the bass around E2..G2
    assert {int(p) % 12 for p in chord[:, 2]} == {9, 0, 4}
    assert (chord[:, 0] == 48).all() and (chord[:, 1] == 48).all()
    assert chord[:, 2].max() <= 79


def test_form_plans():
    assert form.plan("ABA", 16, 4, True) == [("B", 0, 11), ("A", 11, 4)]
    assert form.plan("AABA", 16, 4, False) == [("A", 0, 4), ("B", 4, 8), ("A", 12, 4)]
    assert form.plan("rondo", 17, 2, False) == [("B", 0, 7), ("A", 7, 2), ("C", 9, 6), ("A", 15, 2)]
    for bad, message in (("ABC", "come back"), ("BAB", "start"), ("A1A", "letters"), ("AA", "contrasting")):
        with pytest.raises(InputError, match=message):
            form.plan(bad, 16, 4, False)
    with pytest.raises(InputError, match="needs 7 bars"):
        form.plan("ABA", 6, 4, True)


def test_the_theme_comes_back_note_for_note(plain):
    """With a model that cannot fill in the middle nothing is rewritten: the A section is the prompt's
    opening bars, note for note, at its place in the plan."""
    model, vocab = plain
    piece = d_minor_prompt((4, 4), 2.0)
    prompt = build_prompt(vocab, "bach", piece)
    ((out, _),) = compose(model, vocab, prompt, SamplingConfig(seed=4), bars=6, prompt_piece=piece, form="ABA",
                               theme_bars=2)
    at = 96 + 4 * 48  # after the prompt's 2 bars: B for 4 bars, then A
    back = out.notes[out.notes[:, 0] >= at].copy()
    back[:, 0] -= at
    assert np.array_equal(back[:, :3], piece.notes[:, :3])  # velocities come back at the model's 8 levels
    assert out.end_step == at + 96


def test_the_cli_writes_n_bars_and_an_ending(tiny_models_dir, tiny_midi, tmp_path, monkeypatch, capsys):
    from maia.__main__ import main
    from maia.encoding import read

    monkeypatch.setenv("MAIA_MODELS_DIR", str(tiny_models_dir))
    out = tmp_path / "whole.mid"
    assert main(["generate", "--prompt", str(tiny_midi), "--model", "fim", "--bars", "4", "--end", "--form", "ABA",
                 "--theme-bars", "1", "--key-candidates", "2", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "4.00 bars after the prompt" in err and "ending: tonic chord of" in err
    piece = read(out)
    assert piece.end_step == 2 * 36 + 4 * 36  # the 2-bar 3/4 prompt, then 4 bars
    assert main(["generate", "--end", "-o", str(tmp_path / "x.mid")]) == 1
    assert "--end needs a length" in capsys.readouterr().err


def test_homecoming_locks_the_home_key_from_the_middle_of_the_last_contrast(plain):
    """Before an ending, the home key's lock starts halfway through the last contrasting section (the last
    third without a form); nothing changes without an ending, under the user's own key lock, or from nothing."""
    from maia.controls import Controls

    _, vocab = plain
    piece = d_minor_prompt((4, 4), bars=2)
    prompt = build_prompt(vocab, "bach", piece)
    lay = form.layout(vocab, prompt, bars=12, end=True, form="ABA", theme_bars=2)
    assert lay.sections == [("B", 0, 9), ("A", 9, 2)]
    assert form.homecoming(lay) is None  # off unless asked for
    home = form.homecoming(lay, strength=form.HOMECOMING)
    assert home.key == (2, "minor") and home.key_strength == form.HOMECOMING
    assert home.key_from == 4 * 48  # bar 0 + 9 // 2 of the continuation, which starts on the prompt's bar line
    plain_lay = form.layout(vocab, prompt, bars=12, end=True)
    assert form.homecoming(plain_lay, strength=0.5).key_from == (12 - 4) * 48  # the last third
    assert form.homecoming(form.layout(vocab, prompt, bars=12), strength=0.5) is None  # no ending: free
    mine = Controls(key=(5, "major"), key_strength=0.3)
    assert form.homecoming(lay, mine, strength=0.5) is mine
    register = Controls(lowest=40, highest=90)
    assert form.homecoming(lay, register, strength=form.HOMECOMING) == Controls(key=(2, "minor"), key_strength=form.HOMECOMING, lowest=40,
                                                      highest=90, key_from=4 * 48)
    silent = build_prompt(vocab, "bach", None)
    assert form.homecoming(form.layout(vocab, silent, bars=12, end=True), strength=0.5) is None


def test_a_whole_piece_comes_home_before_its_ending(plain):
    """compose() samples with the homecoming: a random model's notes from the middle of the contrasting
    section on are (nearly all) in the home key, its earlier notes are not."""
    from maia.controls import in_scale_share

    model, vocab = plain
    piece = d_minor_prompt((4, 4), bars=2)
    prompt = build_prompt(vocab, "bach", piece)
    cfg = SamplingConfig(seed=2, top_k=50, max_new_tokens=2000)  # tokens enough for notes in every part
    ((out, _),) = compose(model, vocab, prompt, cfg, bars=12, end=True, prompt_piece=piece, form="ABA",
                               theme_bars=2, home=0.9)  # B: bars 0-8, home from bar 4; the theme at 9-10, the cadence at 11
    start = prompt.steps + 4 * 48
    free = out.notes[(out.notes[:, 0] >= prompt.steps) & (out.notes[:, 0] < start)]
    home = out.notes[(out.notes[:, 0] >= start) & (out.notes[:, 0] < start + 4 * 48)]  # the rewritten join aside
    assert len(free) > 10 and len(home) > 5, (len(free), len(home))
    assert in_scale_share(free, (2, "minor")) < 0.85 < in_scale_share(home, (2, "minor"))


def test_in_key_first_picks_the_first_candidate_in_the_key_or_its_relative():
    def scale(tonic, steps):
        notes = np.array([(i * 12, 12, 60 + tonic + s, 80) for i, s in enumerate(steps * 3)], np.int64)
        return Piece(notes, Q, 120.0)

    c_major = scale(0, [0, 4, 7, 4, 0, 2, 4, 5, 7, 11, 0])
    e_major = scale(4, [0, 4, 7, 4, 0, 2, 4, 5, 7, 11, 0])
    d_minor = scale(2, [0, 3, 7, 3, 0, 2, 3, 5, 7, 1 + 9, 0])
    assert form.in_key_first([e_major, d_minor, c_major], (2, "minor"), 0) == 1
    assert form.in_key_first([e_major, c_major], (9, "minor"), 0) == 1  # A minor: C major is its relative
    assert form.in_key_first([e_major, e_major], (2, "minor"), 0) == 0  # none: the first
    def then(first, second):
        later = second.notes + np.array([first.end_step, 0, 0, 0])
        return Piece(np.concatenate([first.notes, later]), Q, 120.0)

    after = c_major.end_step  # only the music after the prompt counts
    assert form.in_key_first([then(d_minor, c_major), then(c_major, d_minor)], (2, "minor"), after) == 1


def test_key_candidates_keep_the_first_sampled_continuation_in_the_home_key(plain):
    """key_candidates=3: three continuations in one batch (seeds s, s+1, s+2); the one kept is the first whose
    continuation is in the home key, and the music before the shaped bars is exactly that candidate's."""
    from maia.generate import ids_to_piece

    model, vocab = plain
    piece = d_minor_prompt((4, 4), bars=2)
    prompt = build_prompt(vocab, "bach", piece)
    cfg = SamplingConfig(seed=5, top_k=50)
    lay = form.layout(vocab, prompt, bars=6, end=True)
    rows = form.continue_for(model, vocab, prompt.ids, SamplingConfig(seed=5, top_k=50, variations=3,
                                                                      max_new_tokens=lay.budget), lay.steps)
    pieces = [ids_to_piece(r, vocab, prompt) for r in rows]
    want = form.in_key_first(pieces, (2, "minor"), prompt.steps)
    ((out, _),) = compose(model, vocab, prompt, cfg, bars=6, end=True, prompt_piece=piece, key_candidates=3)
    before = lay.hold  # shaping may shorten the notes held into it: compare onsets, pitches and velocities
    assert np.array_equal(out.notes[out.notes[:, 0] < before][:, [0, 2, 3]],
                          pieces[want].notes[pieces[want].notes[:, 0] < before][:, [0, 2, 3]])
    ((one, _),) = compose(model, vocab, prompt, cfg, bars=6, end=True, prompt_piece=piece)  # no candidates
    assert np.array_equal(one.notes[one.notes[:, 0] < before][:, [0, 2, 3]],
                          pieces[0].notes[pieces[0].notes[:, 0] < before][:, [0, 2, 3]])
    two = compose(model, vocab, prompt, SamplingConfig(seed=5, top_k=50, variations=2), bars=6, end=True,
                       prompt_piece=piece, key_candidates=3)  # 2 variations: 2 candidates each, 4 rows
    assert len(two) == 2


def test_a_span_the_tokens_cannot_fill_is_refused_with_the_bars_that_fit(plain):
    """Asking for more bars than the token cap can fill at the prompt's pace would leave the rest silent: one
    line says how many bars fit, and that many are accepted."""
    import re

    _, vocab = plain
    piece = d_minor_prompt((4, 4), bars=2)
    prompt = build_prompt(vocab, "bach", piece)
    with pytest.raises(InputError, match=r"200 bars need about .* tokens .* ask for \d+ bars or fewer") as err:
        form.layout(vocab, prompt, bars=200, max_tokens=4096)
    fits = int(re.search(r"ask for (\d+) bars", str(err.value)).group(1))
    assert 1 <= fits < 200
    assert form.layout(vocab, prompt, bars=fits, max_tokens=4096).steps == fits * 48
    with pytest.raises(InputError, match="ask for"):
        form.layout(vocab, prompt, bars=fits + 2, max_tokens=4096)

"""Tests for maia/generate.py (the one sampling loop) and the `python -m maia generate` command."""

import numpy as np
import pytest
import torch
from helpers import biased_model

from maia.checkpoint import load_model
from maia.encoding import Piece, read
from maia.errors import InputError
from maia.generate import SamplingConfig, build_prompt, generate, generate_ids, ids_to_piece
from maia.limits import Limits
from maia.vocab import Vocab

KINDS = ("gpt", "lstm")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module", params=KINDS)
def tiny(request, tiny_models_dir):
    """(model in float64, so cached and uncached paths agree to the last bit of every decision, vocab)."""
    model, vocab, _ = load_model(tiny_models_dir / request.param, dtype=torch.float64)
    return model, vocab


@pytest.fixture(scope="module")
def tiny_gpt(tiny_models_dir):
    model, vocab, _ = load_model(tiny_models_dir / "gpt", dtype=torch.float64)
    assert model.max_context == 32
    return model, vocab


def start(vocab, composer="bach"):
    return build_prompt(vocab, composer).ids


def biased(model, vocab, ids, amount):
    return biased_model(model, ids, amount)


def greedy_reference(model, vocab, prompt, n, keep_fraction=0.75):
    """Independent greedy decoding with plain forward passes and the documented window policy: once the
    window outgrows max_context, it restarts as the composer token + the last keep - 1 tokens."""
    seq = list(prompt)
    N = model.max_context
    keep = int(N * keep_fraction) if N else None
    win_start = 0
    banned = vocab.special_ids
    for _ in range(n):
        window = seq if win_start == 0 else seq[:1] + seq[win_start:]
        if N and len(window) > N:
            win_start = len(seq) - (keep - 1)
            window = seq[:1] + seq[win_start:]
        with torch.no_grad():
            logits = model(torch.tensor([window]))[0, -1]
        logits[banned] = float("-inf")
        seq.append(int(logits.argmax()))
    return seq


def test_same_seed_same_music(tiny):
    model, vocab = tiny
    cfg = SamplingConfig(max_new_tokens=60, seed=7, variations=2)
    a = generate_ids(model, start(vocab), cfg, vocab)
    b = generate_ids(model, start(vocab), cfg, vocab)
    c = generate_ids(model, start(vocab), SamplingConfig(max_new_tokens=60, seed=8, variations=2), vocab)
    assert a == b
    assert a != c
    # Variation 1 is the same music whatever the number of variations.
    assert generate_ids(model, start(vocab), SamplingConfig(max_new_tokens=60, seed=7), vocab)[0] == a[0]


def test_top_k_1_is_greedy(tiny):
    model, vocab = tiny
    prompt = start(vocab, "mozart")
    raw = dict(max_new_tokens=25, max_hold_beats=None, max_loop_beats=None)  # the guards off: the model alone
    out = generate_ids(model, prompt, SamplingConfig(top_k=1, seed=1, **raw), vocab)[0]
    assert out == greedy_reference(model, vocab, prompt, 25)
    # A tiny nucleus keeps only the likeliest token: greedy again, whatever top-k says.
    nucleus = generate_ids(model, prompt, SamplingConfig(top_k=50, top_p=1e-6, seed=3, **raw), vocab)[0]
    assert nucleus == out


def test_cached_and_uncached_agree(tiny):
    model, vocab = tiny
    cfg = SamplingConfig(max_new_tokens=100, top_k=5, seed=11, variations=3)
    cached = generate_ids(model, start(vocab), cfg, vocab)
    uncached = generate_ids(model, start(vocab), SamplingConfig(**{**cfg.__dict__, "use_cache": False}), vocab)
    assert cached == uncached
    assert all(len(r) > 30 for r in cached)  # long enough that the GPT's window (32) slid


def test_context_slides_past_the_window(tiny_gpt):
    """100 tokens through a block_size-32 GPT, cached, against a plain-forward reference that crops to the
    same window; and the re-priming is amortised: one per 8 tokens, not one per token."""
    model, vocab = tiny_gpt
    prompt = start(vocab)
    fed = []
    real_step = model.step

    def counting_step(idx, cache):
        fed.append(idx.shape[1])
        return real_step(idx, cache)

    model.step = counting_step
    try:
        out = generate_ids(model, prompt, SamplingConfig(max_new_tokens=100, top_k=1, min_new_tokens=100,
                                                                   max_hold_beats=None, max_loop_beats=None), vocab)[0]
    finally:
        del model.step
    assert len(out) == 102
    assert out == greedy_reference(model, vocab, prompt, 100)
    reprimes = [n for n in fed if n > 1]
    # The first prime, then a slide each time the window (24 tokens after a slide) reaches 33.
    assert len(reprimes) == 1 + len(range(32 - 2 + 1, 100, 32 - 24 + 1))
    assert reprimes[0] == 2 and all(n == 24 for n in reprimes[1:])
    assert sum(fed) == 2 + 24 * (len(reprimes) - 1) + (100 - len(reprimes))


def test_long_prompt_is_primed_in_one_window(tiny_gpt):
    model, vocab = tiny_gpt
    prompt = [*start(vocab), *np.random.default_rng(0).integers(vocab.wait_offset + 1, vocab.composer_offset, 90)]
    out = generate_ids(model, prompt, SamplingConfig(max_new_tokens=20, top_k=1, max_hold_beats=None, max_loop_beats=None),
                       vocab)[0]
    assert out == greedy_reference(model, vocab, prompt, 20)


def test_stops_at_end(tiny):
    model, vocab = tiny
    eager = biased(model, vocab, [vocab.end_id], 100.0)  # <end> is all but certain
    # with a note, released: a piece from nothing gets one first, and <end> waits while a key is down
    prompt = [*start(vocab), vocab.on_offset + 60, vocab.wait_offset + 1, vocab.off_offset + 60]
    steps = list(generate(eager, prompt, SamplingConfig(max_new_tokens=50, variations=2), vocab))
    assert steps == [[vocab.end_id, vocab.end_id]]
    rows = generate_ids(eager, prompt, SamplingConfig(max_new_tokens=50, min_new_tokens=5), vocab)
    assert len(rows[0]) >= 5 + 6 and rows[0][-1] == vocab.end_id and vocab.end_id not in rows[0][:-1]
    from maia.listener import unreleased_notes

    assert unreleased_notes(rows[0], vocab) == 0  # what it struck meanwhile is released before <end>
    first = generate_ids(eager, start(vocab), SamplingConfig(max_new_tokens=50, top_k=5), vocab)[0][2:]
    on = range(vocab.on_offset + vocab.config.pitch_lo, vocab.on_offset + vocab.config.pitch_hi + 1)
    assert first[-1] == vocab.end_id and any(t in on for t in first)  # from nothing: a note, then <end>


def test_a_variation_ends_while_others_go_on(tiny):
    model, vocab = tiny
    sometimes = biased(model, vocab, [vocab.end_id], 0.3)  # <end> now and then (~1 in 4 among the top 5)
    # the guards off: they hold <end> back while a key is down, which a random model almost always has
    cfg = SamplingConfig(max_new_tokens=200, variations=4, seed=0, max_hold_beats=None, max_loop_beats=None)
    steps = list(generate(sometimes, start(vocab), cfg, vocab))
    rows = generate_ids(sometimes, start(vocab), cfg, vocab)
    lengths = [len(r) for r in rows]
    assert len(set(lengths)) > 1, lengths  # rows stopped at different times
    for r in rows:
        assert vocab.end_id not in r[2:-1]  # <end> only ever comes last
        assert r[-1] == vocab.end_id or len(r) == 202
    assert len(steps) == max(lengths) - 2
    ended_first = lengths.index(min(lengths))
    assert steps[-1][ended_first] is None  # that row yields None once it ended


def test_variations_differ(tiny):
    model, vocab = tiny
    rows = generate_ids(model, start(vocab), SamplingConfig(max_new_tokens=40, variations=4, seed=5), vocab)
    assert len({tuple(r) for r in rows}) == 4
    assert all(r[:2] == start(vocab) for r in rows)


def test_grammar_guard_never_emits_specials(tiny):
    model, vocab = tiny
    tempted = biased(model, vocab, vocab.special_ids, 50.0)  # the model wants nothing but specials
    rows = generate_ids(tempted, start(vocab), SamplingConfig(max_new_tokens=80, top_k=50, variations=2), vocab)
    banned = set(vocab.special_ids)
    for r in rows:
        assert not banned & set(r[2:])
        assert all(0 <= t < len(vocab) for t in r)


def test_settings_are_validated(tiny, monkeypatch):
    model, vocab = tiny
    for bad in [dict(top_k=-1), dict(top_k=51), dict(min_p=1.0), dict(max_hold_beats=0), dict(variations=5), dict(variations=0), dict(temperature=0.0),
                dict(top_p=1.5), dict(max_new_tokens=0), dict(seed=-1)]:
        with pytest.raises(InputError):
            list(generate(model, start(vocab), SamplingConfig(**bad), vocab))
    cap = Limits.from_env({"MAIA_MAX_TOKENS": "100"}).max_tokens
    with pytest.raises(InputError, match="MAIA_MAX_TOKENS"):
        SamplingConfig(max_new_tokens=101).validate(cap)
    assert SamplingConfig(max_new_tokens=100).validate(cap).max_new_tokens == 100


# ---- prompts ------------------------------------------------------------------------------------
def test_prompt_from_a_piece(tiny_midi):
    vocab = Vocab(composers=("bach", "mozart"))
    piece = read(tiny_midi, vocab.config)
    prompt = build_prompt(vocab, "MOZART", piece)
    assert prompt.ids[:2] == [vocab.composer_id("mozart"), vocab.start_id]
    assert vocab.end_id not in prompt.ids and not prompt.cropped and prompt.message is None
    assert prompt.steps == piece.end_step
    back = ids_to_piece(prompt.ids, vocab, prompt)
    assert np.array_equal(back.notes[:, :3], piece.notes[:, :3])  # velocities come back binned
    assert back.tempo_qpm == pytest.approx(90.0, rel=1e-4) and back.time_signature == (3, 4)
    assert build_prompt(vocab, None).ids == [vocab.composer_id("unknown"), vocab.start_id]
    with pytest.raises(InputError, match="bach, mozart"):
        build_prompt(vocab, "Rachmaninoff")


def test_long_prompt_keeps_its_last_bars():
    vocab = Vocab()
    q = 12  # 64 bars of 4/4, one quarter note per beat
    notes = np.array([(i * q, q, 60 + i % 12, 80) for i in range(256)], np.int64)
    piece = Piece(notes, q, 100.0, (4, 4))
    prompt = build_prompt(vocab, None, piece, max_tokens=100)
    assert prompt.cropped and "kept its last" in prompt.message
    assert len(prompt.ids) - 2 <= 100
    kept = ids_to_piece(prompt.ids, vocab, prompt)
    assert len(kept) > 25 and kept.tempo_qpm == 100.0
    # The kept music is the end of the piece, still on the beat: the last note is the piece's last.
    assert kept.notes[-1, 2] == notes[-1, 2] and kept.end_step % (4 * q) == 0


# ---- the command line ---------------------------------------------------------------------------
def test_cli_generate_writes_midi_and_roll(tiny_models_dir, tiny_midi, tmp_path, monkeypatch, capsys):
    from maia.__main__ import main

    monkeypatch.setenv("MAIA_MODELS_DIR", str(tiny_models_dir))
    out = tmp_path / "out.mid"
    code = main(["generate", "--prompt", str(tiny_midi), "--composer", "Bach", "--tokens", "64", "--seed", "3",
                 "--variations", "2", "-o", str(out), "--roll", str(tmp_path / "roll.png")])
    assert code == 0, capsys.readouterr().err
    for name in ["out.mid", "out_2.mid", "roll.png", "roll_2.png"]:
        assert (tmp_path / name).stat().st_size > 0, name
    vocab = Vocab(composers=("bach", "mozart", "chopin"))
    prompt, result = read(tiny_midi, vocab.config), read(out, vocab.config)
    # The output holds the prompt followed by the continuation.
    assert np.array_equal(result.notes[: len(prompt)][:, [0, 2]], prompt.notes[:, [0, 2]])
    assert result.time_signature == (3, 4)
    again = tmp_path / "again.mid"
    assert main(["generate", "--prompt", str(tiny_midi), "--composer", "bach", "--tokens", "64", "--seed", "3",
                 "--model", str(tiny_models_dir / "gpt"), "-o", str(again)]) == 0
    assert again.read_bytes() == out.read_bytes()  # the default model is gpt; same seed, same MIDI


@pytest.mark.parametrize(
    "args, message",
    [
        (["--top-k", "51"], "top-k must be 0..50"),
        (["--variations", "9"], "variations must be 1..4"),
        (["--tokens", "5000"], "tokens must be 1..4096"),
        (["--composer", "nobody"], "unknown composer 'nobody'"),
        (["--model", "sparse"], "no model"),
        (["--prompt", "missing.mid"], "no such file"),
    ],
)
def test_cli_generate_errors_are_one_line(tiny_models_dir, tmp_path, monkeypatch, capsys, args, message):
    from maia.__main__ import main

    monkeypatch.setenv("MAIA_MODELS_DIR", str(tiny_models_dir))
    monkeypatch.delenv("MAIA_MAX_TOKENS", raising=False)
    assert main(["generate", *args, "-o", str(tmp_path / "x.mid")]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("top_p,expected", [(0.5, {0}), (0.51, {0, 1}), (0.7, {0, 1}), (0.8, {0, 1}), (0.81, {0, 1, 2}),
                                            (1.0, {0, 1, 2})])
def test_top_p_keeps_the_smallest_set_reaching_p(top_p, expected):
    """Probabilities 0.5, 0.3, 0.2: the nucleus is the fewest likeliest tokens whose mass reaches top_p.
    A rule off by one token (``cumsum > top_p``, or ``>=`` in place of ``- p >=``) fails here."""
    from maia.generate import _sample

    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2]]))
    cfg = SamplingConfig(top_k=3, top_p=top_p)
    seen = {int(_sample(logits, torch.zeros(3), cfg, torch.tensor([u]))) for u in np.linspace(0.0, 0.999, 200)}
    assert seen == expected


@pytest.mark.parametrize("temperature,u,expected", [(0.5, 0.85, 0), (1.0, 0.85, 1), (2.0, 0.6, 1), (2.0, 0.5, 0)])
def test_temperature_divides_the_logits(temperature, u, expected):
    """Logits 2, 1, 0. At temperature 0.5 the first token takes 0.867 of the mass (softmax of 4, 2, 0), at 1 it
    takes 0.665, at 2 it takes 0.506: a draw of u picks the first token when u is below that share. Multiplying
    by the temperature instead swaps 0.5 and 2, and fails here."""
    from maia.generate import _sample

    logits = torch.tensor([[2.0, 1.0, 0.0]])
    cfg = SamplingConfig(top_k=3, temperature=temperature)
    assert int(_sample(logits, torch.zeros(3), cfg, torch.tensor([u]))) == expected


def test_a_draw_picks_the_first_token_whose_cumulative_mass_reaches_it():
    """Inverse-CDF sampling takes the smallest index whose cumulative probability is at least u: with two
    tokens of exactly 0.5, u = 0.5 is the first token's and only a larger u is the second's."""
    from maia.generate import _sample

    cfg = SamplingConfig(top_k=2)
    draws = [int(_sample(torch.zeros(1, 2), torch.zeros(2), cfg, torch.tensor([u]))) for u in (0.0, 0.5, 0.5001, 0.999)]
    assert draws == [0, 0, 1, 1]


def test_a_piece_from_nothing_never_opens_with_silence(tiny):
    """A model that loves wait48 (as the piano model sometimes does after <start>): from no prompt, no row
    waits before its first note; after one, waits are free again; with a prompt, nothing changes."""
    model, vocab = tiny
    wait48 = vocab.wait_offset + 48
    lover = biased(model, vocab, [wait48], 30.0)
    config = SamplingConfig(max_new_tokens=12, seed=3, variations=3)
    rows = generate_ids(lover, start(vocab), config, vocab)
    on = range(vocab.on_offset + vocab.config.pitch_lo, vocab.on_offset + vocab.config.pitch_hi + 1)
    for row in rows:
        new = row[len(start(vocab)):]
        first_on = next(i for i, t in enumerate(new) if t in on)
        assert wait48 not in new[:first_on]
        assert wait48 in new[first_on:]  # then the model has its way
    prompt = [*start(vocab), vocab.on_offset + 60]  # a prompt with a note: waits are allowed at once
    assert generate_ids(lover, prompt, SamplingConfig(max_new_tokens=3, seed=3), vocab)[0][len(prompt)] == wait48


def _sample_before_2026_12_07(logits, bias, cfg, u):
    """``_sample`` as it was before it skipped the division by a temperature of 1 and took float32 draws:
    the reference that the leaner one must match bit for bit."""
    logits = (logits.float() + bias) / cfg.temperature
    k = cfg.top_k or logits.shape[-1]
    top, idx = torch.topk(logits, k, dim=-1)
    if cfg.top_p is not None and k > 1:
        p = torch.softmax(top, dim=-1)
        top = top.masked_fill(p.cumsum(-1) - p >= cfg.top_p, float("-inf"))
    if cfg.min_p and k > 1:
        p = torch.softmax(top, dim=-1)
        top = top.masked_fill(p < cfg.min_p * p[:, :1], float("-inf"))
    probs = torch.softmax(top, dim=-1)
    choice = (probs.cumsum(-1) < u.unsqueeze(-1).to(probs.dtype)).sum(-1, keepdim=True).clamp_(max=k - 1)
    return idx.gather(-1, choice).squeeze(-1)


@pytest.mark.parametrize("settings", [dict(top_k=5), dict(top_k=20, temperature=0.7), dict(top_k=0, top_p=0.9),
                                      dict(top_k=50, min_p=0.05, temperature=1.3)])
def test_lean_sampling_draws_what_the_previous_sampling_drew(settings):
    """10,000 rows of random logits and draws (float64 draws, as generate makes them, against their float32
    copies, as generate now passes them): the same token from ``_sample`` as from the previous code."""
    from maia.generate import _sample

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(10_000, 64, generator=g) * 3
    bias = torch.zeros(64)
    bias[[0, 5, 9]] = float("-inf")
    u = torch.rand(10_000, generator=g, dtype=torch.float64)
    cfg = SamplingConfig(**settings)
    assert torch.equal(_sample(logits, bias, cfg, u.float()), _sample_before_2026_12_07(logits, bias, cfg, u))


@pytest.mark.parametrize("variations", [1, 4])
@pytest.mark.parametrize("with_prompt", [False, True])
def test_fast_decoding_samples_what_the_module_path_samples(tiny_models_dir, variations, with_prompt):
    """The GPT's one-token fast path (GPT._decode_one) against its module path (GPT._run, taken whenever a
    forward hook is on the model), in float32 as shipped: the same ids for fixed seeds, one row and four,
    with and without a prompt, over 100 tokens through a 32-token window (so it slides, and re-primes)."""
    model, vocab, _ = load_model(tiny_models_dir / "gpt")
    assert model.max_context == 32
    prompt = start(vocab)
    if with_prompt:
        prompt += np.random.default_rng(1).integers(vocab.wait_offset + 1, vocab.composer_offset, 12).tolist()
    cfg = SamplingConfig(max_new_tokens=100, min_new_tokens=100, top_k=20, seed=3, variations=variations)
    fast = generate_ids(model, prompt, cfg, vocab)
    handle = model.register_forward_hook(lambda *args: None)  # any hook: step then runs the modules
    try:
        slow = generate_ids(model, prompt, cfg, vocab)
    finally:
        handle.remove()
    assert model._hooked() is False
    assert fast == slow
    assert all(len(row) == len(prompt) + 100 for row in fast)

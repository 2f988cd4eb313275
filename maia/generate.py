"""The one sampling loop: top-k (and top-p) sampling with a temperature, a seed, a cache, streaming.

The app, the CLI, the benchmarks and the tests all call ``generate`` (or ``generate_ids`` around it):

    prompt = build_prompt(vocab, "mozart", read("assets/prompts/lacrimosa.mid", vocab.config))
    for new in generate(model, prompt.ids, SamplingConfig(max_new_tokens=512, seed=1), vocab):
        ...  # new: one token id per variation, None for a variation that has already ended

Each step: crop the context to the model's window, scale the logits by the temperature, keep the top k
(then the top-p nucleus), softmax, sample. Variations are rows of one batch. The GPT keeps a KV cache and
the LSTM its recurrent state, so a step feeds one token per row. Past the GPT's window (``max_context``)
the window slides: it keeps the composer token and the last ``keep_fraction`` of the window and re-primes
the cache with them, in chunks. The next slide is then ``(1 - keep_fraction) * max_context`` tokens
away, so sliding costs one re-prime per quarter window instead of a full recompute per token.

Over 300 lines on purpose: the conventions ask for one sampling loop, and the prompt it starts from, the
sampling rules, the sliding window and the fill-in-the-middle entry are that loop's parts (maia/compose.py
collects its rows into pieces).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from maia.encoding import DEFAULT_TEMPO, Piece, decode_ids, encode_ids, expand_merges
from maia.errors import InputError
from maia.guards import Guards
from maia.limits import DEFAULT_MAX_PROMPT_TOKENS, DEFAULT_MAX_TOKENS
from maia.vocab import Vocab

TOP_K_RANGE = (0, 50)  # 0: no top-k cut (the whole vocabulary; top-p or min-p then decide)
TEMPERATURE_RANGE = (0.05, 5.0)
VARIATIONS_RANGE = (1, 4)
PRIME_CHUNK = 256  # tokens fed to the model at once when (re-)priming a cache


# ---- settings -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SamplingConfig:
    max_new_tokens: int = 512  # tokens sampled per variation, not counting the prompt
    # The defaults were chosen on held-out prompts by listener measures and bits per note (docs/models.md,
    # "Whole pieces"); the original maia's top-k 1..5 is top_k=5, top_p=None, min_p=None.
    top_k: int = 20  # sample among the k likeliest tokens (0: no cut); 20 is closest to real music
    temperature: float = 1.0  # divides the logits: below 1 plays safer, above 1 takes more risks
    top_p: float | None = None  # nucleus: of the top k, keep the fewest whose probabilities reach top_p
    min_p: float | None = None  # keep the tokens at least min_p times as likely as the likeliest
    seed: int | None = 0  # same seed, model and prompt give the same music; None draws a fresh seed
    variations: int = 1  # continuations sampled together as one batch (B = variations)
    min_new_tokens: int = 0  # <end> is forbidden until this many tokens were sampled
    use_cache: bool = True  # False recomputes the whole window every token: the reference and the baseline
    keep_fraction: float = 0.75  # when the window slides it keeps the composer token + this fraction of it
    max_hold_beats: float | None = 8.0  # a key held longer is nudged to release (maia/guards.py); None: off
    max_loop_beats: float | None = 4.0  # onsets on two pitches for longer are steered away from them; None: off

    def validate(self, max_tokens: int = DEFAULT_MAX_TOKENS) -> SamplingConfig:
        """Returns self, or raises InputError naming the first setting out of range; ``max_tokens`` is the
        server's cap on new tokens (maia.limits, MAIA_MAX_TOKENS)."""
        cap = max_tokens

        def check(ok: bool, what: str) -> None:
            if not ok:
                raise InputError(what)

        lo, hi = TOP_K_RANGE
        check(isinstance(self.top_k, int) and lo <= self.top_k <= hi, f"top-k must be {lo}..{hi}, not {self.top_k}")
        lo, hi = TEMPERATURE_RANGE
        check(lo <= self.temperature <= hi, f"temperature must be {lo}..{hi}, not {self.temperature}")
        check(self.top_p is None or 0.0 < self.top_p <= 1.0, f"top-p must be in (0, 1], not {self.top_p}")
        check(self.min_p is None or 0.0 <= self.min_p < 1.0, f"min-p must be in [0, 1), not {self.min_p}")
        for name in ("max_hold_beats", "max_loop_beats"):
            v = getattr(self, name)
            check(v is None or v > 0, f"{name} must be positive or None, not {v}")
        lo, hi = VARIATIONS_RANGE
        check(lo <= self.variations <= hi, f"variations must be {lo}..{hi}, not {self.variations}")
        check(1 <= self.max_new_tokens <= cap, f"tokens must be 1..{cap} (MAIA_MAX_TOKENS), not {self.max_new_tokens}")
        check(0 <= self.min_new_tokens <= self.max_new_tokens, "min_new_tokens must be 0..max_new_tokens")
        check(0.0 < self.keep_fraction < 1.0, "keep_fraction must be in (0, 1)")
        check(self.seed is None or 0 <= self.seed < 2**62, f"seed must be 0..2**62, not {self.seed}")
        return self


# ---- prompts ------------------------------------------------------------------------------------
@dataclass
class Prompt:
    """Token ids to continue, ``<composer:X> <start> body`` without ``<end>``, and what decoding needs
    to give the continuation the prompt's tempo and time signature."""

    ids: list[int]
    composer: str
    tempo_qpm: float = DEFAULT_TEMPO
    time_signature: tuple[int, int] | None = None
    steps: int = 0  # length of the prompt in grid steps: where the continuation begins
    cropped: bool = False  # the piece was longer than the limit and lost its beginning
    message: str | None = None  # one line for the user when cropped


def resolve_composer(vocab: Vocab, name: str | None) -> str:
    """A user-typed composer name -> the vocabulary's name; InputError listing the choices if unknown."""
    if name is None or not str(name).strip():
        return "unknown"
    found = vocab.find_composer(str(name))
    if found is None:
        raise InputError(f"unknown composer {name!r}; choose one of: {', '.join(vocab.composers)}")
    return found


def build_prompt(vocab: Vocab, composer: str | None = None, piece: Piece | None = None,
                 max_tokens: int = DEFAULT_MAX_PROMPT_TOKENS) -> Prompt:
    """The prompt for ``composer`` (any case, or None for unknown): ``<composer:X> <start>`` alone, or
    followed by the encoded ``piece`` (no ``<end>``: the music goes on). A piece longer than
    ``max_tokens`` (maia.limits, MAIA_MAX_PROMPT_TOKENS) keeps its last bars and says so in ``message``."""
    from maia.merges import apply_merges

    name = resolve_composer(vocab, composer)
    if piece is None:
        return Prompt([vocab.composer_id(name), vocab.start_id], name)

    def encoded(p: Piece) -> np.ndarray:
        ids = encode_ids(p, vocab, name, end=False)
        return apply_merges(ids, vocab) if vocab.merges else ids

    ids, cropped, kept = encoded(piece), False, piece
    if len(ids) - 2 > max_tokens:
        # Cut at a bar line so the kept music still sits on the beat: drop whole bars from the start
        # until the rest fits. One bar of 4/4 unless the piece says otherwise.
        num, den = piece.time_signature or (4, 4)
        bar = max(1, piece.steps_per_quarter * 4 * num // den)
        # First guess from the token density, then walk forward bar by bar.
        frac = 1.0 - max_tokens / (len(ids) - 2)
        cut = int(piece.end_step * frac) // bar * bar
        while True:
            notes = piece.notes[piece.notes[:, 0] >= cut].copy()
            notes[:, 0] -= cut
            kept = replace(piece, notes=notes)
            ids = encoded(kept)
            if len(ids) - 2 <= max_tokens or len(notes) == 0:
                break
            cut += bar
        if len(kept.notes) == 0:
            raise InputError(f"the prompt does not fit in {max_tokens} tokens")
        cropped = True
    ids = [int(i) for i in ids]
    message = None
    if cropped:
        message = (f"the prompt is long: kept its last {kept.duration_seconds:.0f} s of "
                   f"{piece.duration_seconds:.0f} s ({len(ids) - 2} tokens, limit {max_tokens})")
    return Prompt(ids, name, kept.tempo_qpm, kept.time_signature, time_steps(ids, vocab), cropped, message)


def time_steps(ids: Sequence[int], vocab: Vocab) -> int:
    """Grid steps that the tokens advance time by (the sum of their waits)."""
    base = np.asarray(expand_merges(list(ids), vocab), np.int64)
    w0, max_wait = vocab.wait_offset, vocab.config.max_wait
    waits = base[(base > w0) & (base <= w0 + max_wait)] - w0
    return int(waits.sum())


def ids_to_piece(ids: Sequence[int], vocab: Vocab, prompt: Prompt | None = None) -> Piece:
    """Decodes prompt + continuation ids into a Piece with the prompt's tempo and time signature."""
    if prompt is None:
        return decode_ids(ids, vocab)
    return decode_ids(ids, vocab, tempo_qpm=prompt.tempo_qpm, time_signature=prompt.time_signature)


# ---- the model's window -------------------------------------------------------------------------
class _Window:
    """What the model sees of the sequence ``seq[:, :n]`` (B rows): all of it, or once it outgrew the
    model's window, ``head`` (the composer token) followed by ``seq[:, start:n]``. With a cache, the
    first ``cache.length`` tokens of the window are already in it."""

    def __init__(self, model, seq: torch.Tensor, n: int, cfg: SamplingConfig, vocab: Vocab):
        self.model, self.seq, self.n, self.use_cache = model, seq, n, cfg.use_cache
        self.max_context = getattr(model, "max_context", None)
        self.head = seq[:, :1] if vocab.is_composer(int(seq[0, 0])) else seq[:, :0]  # (B, 0 or 1)
        self.start = 0  # window = seq[:, :n] while start == 0, else cat(head, seq[:, start:n])
        if self.max_context is not None:
            self.keep = max(self.head.shape[1] + 1, int(self.max_context * cfg.keep_fraction))
        self.cache = None

    def __len__(self) -> int:
        return self.n - self.start + (self.head.shape[1] if self.start else 0)

    def tokens(self, skip: int = 0) -> torch.Tensor:
        """The window's ids from position ``skip`` on, (B, len - skip)."""
        if self.start == 0:
            return self.seq[:, skip : self.n]
        h = self.head.shape[1]
        if skip >= h:
            return self.seq[:, self.start + skip - h : self.n]
        return torch.cat([self.head[:, skip:], self.seq[:, self.start : self.n]], dim=1)

    def append(self, tok: torch.Tensor) -> None:
        self.seq[:, self.n] = tok
        self.n += 1

    def next_logits(self) -> torch.Tensor:
        """Logits (B, V) for the token after the window."""
        # Crop the context: past the model's window keep the composer token + the last `keep` tokens.
        if self.max_context is not None and len(self) > self.max_context:
            self.start = self.n - (self.keep - self.head.shape[1])
            self.cache = None  # positions changed: the cache is re-primed below
        if not self.use_cache:
            return self.model(self.tokens())[:, -1]  # (B, V): full recompute, the reference path
        if self.cache is None:
            self.cache = self.model.init_cache(self.seq.shape[0])
        new = self.tokens(self.cache.length)  # (B, T_new): 1 per step, the whole window after a slide
        for i in range(0, new.shape[1], PRIME_CHUNK):
            logits = self.model.step(new[:, i : i + PRIME_CHUNK], self.cache)
        return logits[:, -1]  # (B, V)


def prompt_tokens_in_view(model, n_prompt: int, config: SamplingConfig) -> int:
    """How many of a prompt's ``n_prompt`` ids (composer token included) the model sees when it samples the
    first new token: all, unless the prompt is longer than the model's window, which then slides to the
    composer token and the last ``keep_fraction`` of the window (as ``_Window`` does)."""
    ctx = getattr(model, "max_context", None)
    if ctx is None or n_prompt <= ctx:
        return n_prompt
    return max(2, int(ctx * config.keep_fraction))


def _logit_bias(vocab: Vocab, n_logits: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Additive masks (V,): the grammar guard (never <pad>, <start>, a composer or an id beyond the
    vocabulary mid-piece), and the same with <end> also forbidden (before min_new_tokens)."""
    bias = torch.zeros(n_logits, device=device)
    bias[vocab.special_ids] = float("-inf")
    bias[len(vocab) :] = float("-inf")
    no_end = bias.clone()
    no_end[vocab.end_id] = float("-inf")
    return bias, no_end


def _sample(logits: torch.Tensor, bias: torch.Tensor, cfg: SamplingConfig, u: torch.Tensor) -> torch.Tensor:
    """One token per row from logits (B, V) and one uniform draw per row u (B,) -> (B,)."""
    logits = logits.float() + bias  # grammar guard
    if cfg.temperature != 1.0:  # temperature (dividing by 1 changes no bit: skipped, one operator fewer)
        logits = logits / cfg.temperature
    k = cfg.top_k or logits.shape[-1]
    top, idx = torch.topk(logits, k, dim=-1)  # top-k: (B, k), sorted, likeliest first
    if cfg.top_p is not None and k > 1:  # top-p: drop the tail past the nucleus (keeps >= 1)
        p = torch.softmax(top, dim=-1)
        top = top.masked_fill(p.cumsum(-1) - p >= cfg.top_p, float("-inf"))
    if cfg.min_p and k > 1:  # min-p: drop what is less than min_p times as likely as the likeliest (keeps >= 1)
        p = torch.softmax(top, dim=-1)
        top = top.masked_fill(p < cfg.min_p * p[:, :1], float("-inf"))
    probs = torch.softmax(top, dim=-1)  # softmax over the survivors
    # Sample by inverting the CDF with the row's own uniform draw: (B, 1) index into the top k.
    choice = (probs.cumsum(-1) < u.view(-1, 1).to(probs.dtype)).sum(-1, keepdim=True).clamp_(max=k - 1)
    return idx.gather(-1, choice).squeeze(-1)


def _wait_steps(vocab: Vocab, n_logits: int, device) -> torch.Tensor:
    """(V,) the grid steps each token id advances time by (a merge of waits: their sum)."""
    w0, max_wait = vocab.wait_offset, vocab.config.max_wait
    wait = [sum(t - w0 for t in vocab.expand_id(i) if w0 < t <= w0 + max_wait) for i in range(len(vocab))]
    out = torch.zeros(n_logits, dtype=torch.long, device=device)
    out[: len(vocab)] = torch.tensor(wait, dtype=torch.long)
    return out


class _Clock:
    """Grid steps each row's continuation has advanced so far (for a key lock that starts later)."""

    def __init__(self, vocab: Vocab, rows: int, n_logits: int, device):
        self.wait = _wait_steps(vocab, n_logits, device)  # (V,)
        self.elapsed = torch.zeros(rows, dtype=torch.long, device=device)  # (B,)

    def update(self, toks: list[int]) -> None:
        self.elapsed = self.elapsed + self.wait[torch.as_tensor(toks, device=self.wait.device)]


class _TimeFill:
    """Makes every row advance time by exactly ``steps`` grid steps and then end with ``stop_id``: a wait
    longer than what is left is masked, the stop token is masked until no time is left and forced then;
    when the token budget would run out first, only waits are allowed, so the time is always filled.
    This is how a fill-in-the-middle span meets the music after it on the beat."""

    def __init__(self, vocab: Vocab, steps: int, rows: int, n_logits: int, stop_id: int, device):
        self.wait = _wait_steps(vocab, n_logits, device)  # (V,) steps each token advances
        self.left = torch.full((rows,), steps, dtype=torch.long, device=device)  # (B,)
        self.stop_id, self.end_id, self.max_wait = stop_id, vocab.end_id, vocab.config.max_wait

    def bias(self, base: torch.Tensor, tokens_left: int) -> torch.Tensor:
        """(V,) grammar bias -> (B, V) with the time budget applied; ``tokens_left`` counts this step."""
        b = base.expand(len(self.left), -1).clone()
        b[self.wait[None, :] > self.left[:, None]] = float("-inf")  # waits past the span
        hurry = (tokens_left - 1) <= (self.left + self.max_wait - 1) // self.max_wait  # (B,) only waits fit now
        b[hurry[:, None] & (self.wait[None, :] == 0)] = float("-inf")
        b[:, [self.stop_id, self.end_id]] = float("-inf")
        full = self.left == 0  # no time left: the stop token only
        b[full] = float("-inf")
        b[full, self.stop_id] = 0.0
        return b

    def update(self, tok: torch.Tensor) -> None:
        self.left -= self.wait[tok]


@torch.inference_mode()
def _step(window: _Window, bias: torch.Tensor, cfg: SamplingConfig, u: torch.Tensor,
          done: torch.Tensor | None, end_id: int, fill: _TimeFill | None = None, tokens_left: int = 0,
          guards: Guards | None = None) -> list[int]:
    """Samples and appends one token per row; rows already done (``done``, None when none is) repeat
    <end>. Returns the tokens."""
    if fill is not None:
        bias = fill.bias(bias, tokens_left)
    if guards is not None:  # hanging keys, loops, and keys still down when the piece must close
        closing = None
        if fill is not None:  # the held keys are released once the time is spent, or earlier when the tokens
            # left only just cover their releases, the waits to the end and the stop; when they cannot cover
            # all three, the time wins (the fill's own rule)
            down = torch.tensor([len(h) for h in guards.held], device=fill.left.device)
            need = down + (fill.left + fill.max_wait - 1) // fill.max_wait + 1
            closing = ((fill.left == 0) | (need >= tokens_left)) & (need <= tokens_left)
        found = guards.bias(tokens_left if fill is None else None, closing)
        if found is not None:
            extra, replace_rows = found
            guarded = torch.where(replace_rows[:, None], extra, bias + extra)
            # A guard never leaves a row without a choice (a time budget that only waits can meet wins).
            bias = torch.where(torch.isinf(guarded).all(-1, keepdim=True), bias.expand_as(guarded), guarded)
    tok = _sample(window.next_logits(), bias, cfg, u)
    if done is not None:
        tok = tok.masked_fill(done, end_id)
    window.append(tok)
    if fill is not None:
        fill.update(tok)
    toks = tok.tolist()  # the one host sync per step: streaming needs the tokens anyway
    if guards is not None:
        guards.update(toks)
    return toks


def generate(model, prompt_ids: Sequence[int], config: SamplingConfig, vocab: Vocab,
             fill_steps: int | None = None, stop_id: int | None = None, controls=None,
             open_with_note: bool = False) -> Iterator[list[int | None]]:
    """Streams continuations of ``prompt_ids``: ``config.variations`` rows sampled as one batch.

    Yields after each step a list with one new token id per variation, None for a variation that ended
    (sampled <end>, or ``stop_id``) earlier; stops after ``max_new_tokens`` steps or once every variation
    ended. With ``fill_steps``, each variation advances time by exactly that many grid steps and then ends
    with ``stop_id`` (used by ``infill``). ``open_with_note``: the continuation starts with a note, as one
    composed from nothing always does (a duet's answer). Raises InputError for settings out of range or an
    empty prompt."""
    # The cap on new tokens is the server's policy, applied where requests come in (Limits.max_tokens).
    cfg = config.validate(max_tokens=max(DEFAULT_MAX_TOKENS, config.max_new_tokens))
    if len(prompt_ids) == 0:
        raise InputError("empty prompt: it needs at least a composer token")
    device = next(model.parameters()).device
    B, P = cfg.variations, len(prompt_ids)
    seed = cfg.seed if cfg.seed is not None else secrets.randbits(62)
    with torch.inference_mode():
        # Variation i draws from its own stream (seed + i), all draws made up front: variation 1 is the
        # same music whatever the number of variations, on any device, and sampling never calls the RNG.
        u = torch.stack([torch.rand(cfg.max_new_tokens, generator=torch.Generator().manual_seed(seed + i),
                                    dtype=torch.float64) for i in range(B)], dim=1)  # (T_new, B)
        u = u.to(device, torch.float32)  # as _sample compares them with float32 probabilities: converted once
        seq = torch.empty(B, P + cfg.max_new_tokens, dtype=torch.long, device=device)  # (B, T_total)
        seq[:, :P] = torch.as_tensor(np.asarray(prompt_ids, np.int64), device=device)
        window = _Window(model, seq, P, cfg, vocab)
        n_logits = getattr(model.config, "vocab_size", len(vocab))
        bias, no_end = _logit_bias(vocab, n_logits, device)
        late = None  # a key lock that starts later: (its extra bias, the step it starts, the clock)
        if controls is not None and controls.validate().active:  # key lock, register, density
            from maia.controls import control_bias

            steer = control_bias(controls, vocab, n_logits, device)
            if controls.key_from > 0 and controls.key is not None and controls.key_strength > 0:
                early = control_bias(replace(controls, key=None), vocab, n_logits, device)
                late = (steer - early, controls.key_from, _Clock(vocab, B, n_logits, device))
                steer = early
            bias, no_end = bias + steer, no_end + steer
        done = None  # (B,) bool once a variation has ended
        stop_id = vocab.end_id if stop_id is None else stop_id
        # Composing from nothing (or asked to open with a note), a piece never opens with silence: no wait (and
        # no <end>) before the first note-on (the piano model otherwise sometimes opens with dozens of whole-bar
        # waits).
        on_lo, on_hi = vocab.on_offset + vocab.config.pitch_lo, vocab.on_offset + vocab.config.pitch_hi
        silent = None
        if open_with_note or (stop_id == vocab.end_id and not any(
                on_lo <= int(t) <= on_hi for t in expand_merges(list(prompt_ids), vocab))):
            silent = torch.ones(B, dtype=torch.bool, device=device)
            waits = _wait_steps(vocab, n_logits, device) > 0  # (V,) every id that moves time, merges too
            waits[stop_id] = True
        fill = None if fill_steps is None else _TimeFill(vocab, fill_steps, B, n_logits, stop_id, device)
        guards = None
        if cfg.max_hold_beats is not None or cfg.max_loop_beats is not None:
            guards = Guards(vocab, B, n_logits, device, cfg.max_hold_beats, cfg.max_loop_beats, prompt_ids)
    ended = [False] * B
    for i in range(cfg.max_new_tokens):
        b = no_end if i < cfg.min_new_tokens else bias
        if silent is not None:  # rows with no note yet: no wait
            b = b.expand(B, -1).masked_fill(silent[:, None] & waits[None, :], float("-inf"))
        if late is not None:  # rows whose music has reached the late lock's start get it
            extra, start, clock = late
            b = torch.where((clock.elapsed >= start)[:, None], b + extra, b)
        toks = _step(window, b, cfg, u[i], done, stop_id, fill, cfg.max_new_tokens - i, guards)
        if late is not None:
            late[2].update(toks)
        if silent is not None:  # per-token work only until every row has sounded, then none
            sounded = [any(on_lo <= x <= on_hi for x in vocab.expand_id(t)) for t in toks]
            silent = silent & ~torch.tensor(sounded, device=device)
            if not bool(silent.any()):
                silent = None
        yield [None if e else t for e, t in zip(ended, toks, strict=True)]
        now = [e or t == stop_id for e, t in zip(ended, toks, strict=True)]
        if now != ended:  # a variation sampled <end>: it stops, the others go on
            if all(now):
                return
            ended, done = now, torch.tensor(now, device=device)


def infill(model, prefix_ids: Sequence[int], suffix_ids: Sequence[int], steps: int, config: SamplingConfig,
           vocab: Vocab, controls=None) -> Iterator[list[int | None]]:
    """Streams middles for a gap of ``steps`` grid steps between ``prefix_ids`` (``<composer:X> <start>
    ...``, the music before the gap) and ``suffix_ids`` (the music after it) with a fill-in-the-middle
    model: the prompt is ``<composer> <fim:prefix> A <fim:suffix> C <fim:middle>``, and each middle
    advances time by exactly ``steps`` and ends with ``<fim:end>`` (yielded like any token). The caller
    crops A and C to leave room for the middle in the model's window (maia/infill.py does)."""
    if not vocab.fim:
        raise InputError("this model was not trained to fill in the middle; choose a model with fill-in-the-middle")
    if len(prefix_ids) == 0 or not vocab.is_composer(int(prefix_ids[0])):
        raise InputError("the prefix must begin with a composer token")
    prompt = [int(prefix_ids[0]), vocab.prefix_id, *map(int, prefix_ids[1:]), vocab.suffix_id, *map(int, suffix_ids),
              vocab.middle_id]
    ctx = getattr(model, "max_context", None)
    if ctx is not None and len(prompt) + config.max_new_tokens > ctx:
        raise InputError(f"prefix, suffix and middle ({len(prompt)} + {config.max_new_tokens} tokens) exceed the "
                         f"model's window of {ctx}")
    yield from generate(model, prompt, config, vocab, fill_steps=steps, stop_id=vocab.fim_end_id, controls=controls)


def generate_ids(model, prompt_ids: Sequence[int], config: SamplingConfig, vocab: Vocab, controls=None) -> list[list[int]]:
    """Non-streaming ``generate``: for each variation, the prompt followed by its continuation (ending
    with <end> if the model finished the piece)."""
    rows = [list(map(int, prompt_ids)) for _ in range(config.variations)]
    for step in generate(model, prompt_ids, config, vocab, controls=controls):
        for row, t in zip(rows, step, strict=True):
            if t is not None:
                row.append(t)
    return rows

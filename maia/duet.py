"""The duet: you play a phrase, maia answers it, and the whole dialogue is one piece.

    duet = Duet(model, vocab, composer="chopin", bpm=100)
    turn = duet.turn({"notes": [[60, 0.0, 0.4, 90], ...], "beat": 9, "bars": 2, "key": "the prompt's key"})
    for event in turn.events(): ...   # maia's answer as it is sampled: ("on", pitch, seconds, velocity) and
    ...                               # ("off", pitch, seconds), on the dialogue's clock
    duet.piece()                      # the dialogue so far (yours and maia's notes), a maia.encoding.Piece

The dialogue's clock starts at the first note you played; beats follow at the tempo you chose (4/4). Your
phrase arrives as notes in seconds on that clock, with the beat on which maia must come in (the page picks
the first beat after your phrase that leaves maia time to answer: maia/web/keys.js). maia then:

1. puts your notes on the grid (12 steps a quarter, or 1/16 with ``quantise``) after what was played before;
2. writes the prompt: the tokens maia heard and played last turn, then your phrase and the rest to the beat
   (the first turn, or a phrase begun while maia still played: the dialogue encoded afresh, from a bar line);
3. samples with the one sampling loop, ``maia.generate.generate(fill_steps=...)``: exactly ``bars`` bars of
   the metre, every key released on the last step, steered by ``maia.controls.Controls`` (the key lock on
   your phrase's key by default, register, density);
4. streams each note-on as its token is sampled and each note-off as its key is released, so that the page
   can sound the first note while the rest is still being sampled (the answer is sampled several times faster
   than it plays; the page schedules every note from the beat on).

The answer opens with a note: until its first note-on, a rest is not sampled (``generate``'s
``open_with_note``, as for a piece composed from nothing). The model's KV cache of one answer is kept for the next,
and the next prompt begins with exactly the tokens it holds, so a turn feeds the model only your new phrase:
maia's reaction does not grow with the dialogue. Once what maia heard nears ``max_prompt_tokens``,
``prepare`` (between turns, while the answer still sounds) has it hear the dialogue from a later bar line and
primes a cache with that. Everything a user can send wrong is an ``InputError`` with one line; sizes are
bounded (``MAX_TURNS``, ``MAX_PHRASE_NOTES``, ``MAX_BARS``, ``MAX_GAP_BEATS``, ``MAX_DUETS``).

Over 300 lines because the phrase's checks, one turn, the dialogue and its cache, and the duets a server holds
(``Duets``, the page's route) share one clock and one cache and are read together; each class is short.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch

from maia.controls import Controls, parse_key
from maia.encoding import Piece, bin_velocity, encode_ids, normalize_notes
from maia.errors import InputError
from maia.form import bar_steps, token_budget
from maia.generate import PRIME_CHUNK, SamplingConfig, build_prompt, generate, prompt_tokens_in_view
from maia.limits import DEFAULT_MAX_PROMPT_TOKENS, DEFAULT_MAX_TOKENS
from maia.metrics import estimate_key
from maia.models.gpt import KVCache
from maia.vocab import Vocab

MAX_TURNS = 64  # your phrases in one dialogue; then start a new duet
MAX_PHRASE_NOTES = 512  # notes in one phrase
MAX_BARS = 8  # the longest answer
MAX_GAP_BEATS = 16  # maia comes in at most this many beats after your last note
MAX_SECONDS = 3600.0  # the dialogue's clock: an hour at most
BPM_RANGE = (30, 300)
DUET_PROMPT_TOKENS = 512  # the dialogue maia hears: its last bars, within this many tokens (about 20 s of
#                           music; half the piano model's window, so that prompt and answer fit in it)
KEY_OF_PHRASE = "the prompt's key"  # the page's key-lock choice: your playing's key (maia.options.KEY_OF_PROMPT)
KEY_OFF = "off"
USER, MAIA = 0, 1  # who played a note (maia.live's numbering)


def _number(value, what: str, lo: float, hi: float) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a number, not {value!r}") from None
    if not math.isfinite(x) or not lo <= x <= hi:
        raise InputError(f"{what} must be {lo:g}..{hi:g}, not {value!r}")
    return x


def _whole(value, what: str, lo: int, hi: int) -> int:
    x = _number(value, what, lo, hi)
    if x != int(x):
        raise InputError(f"{what} must be a whole number, not {value!r}")
    return int(x)


def read_phrase(raw) -> np.ndarray:
    """A phrase as the page sends it, [[pitch, onset s, release s, velocity], ...] -> float array (N, 4);
    InputError for anything else (one line naming the first bad note)."""
    if not isinstance(raw, list):
        raise InputError("a phrase is a list of notes [pitch, onset, release, velocity]")
    if len(raw) > MAX_PHRASE_NOTES:
        raise InputError(f"the phrase has {len(raw)} notes, over the limit of {MAX_PHRASE_NOTES}")
    out = np.zeros((len(raw), 4))
    for i, note in enumerate(raw):
        if not isinstance(note, list | tuple) or len(note) != 4:
            raise InputError(f"note {i + 1} of the phrase is not [pitch, onset, release, velocity]: {note!r}"[:200])
        p, s, e, v = note
        out[i] = (_whole(p, f"note {i + 1}'s pitch", 0, 127), _number(s, f"note {i + 1}'s onset", 0, MAX_SECONDS),
                  _number(e, f"note {i + 1}'s release", 0, MAX_SECONDS), _whole(v, f"note {i + 1}'s velocity", 1, 127))
        if out[i, 2] < out[i, 1]:
            raise InputError(f"note {i + 1} of the phrase is released before it is struck")
    return out


@dataclass(frozen=True)
class Request:
    """One turn's request, checked: your phrase (seconds), the beat maia comes in on, the answer's length in
    bars, and the steering of maia's answer (the key lock's choice: ``KEY_OF_PHRASE``, ``KEY_OFF`` or a key)."""

    notes: np.ndarray  # (N, 4) float: pitch, onset s, release s, velocity
    beat: int
    bars: int = 2
    key: str = KEY_OF_PHRASE
    key_strength: float = 1.0
    lowest: int = 21
    highest: int = 108
    density: float = 1.0
    quantise: bool = True

    @classmethod
    def read(cls, message: dict) -> Request:
        """The page's JSON message -> Request; InputError (one line) for a missing or bad value."""
        if not isinstance(message, dict):
            raise InputError("a turn is a JSON object with the phrase's notes and the beat maia comes in on")
        unknown = set(message) - {"type", "notes", "beat", "bars", "key", "key_strength", "lowest", "highest",
                                  "density", "quantise"}
        if unknown:
            raise InputError(f"unknown setting {sorted(unknown)[0]!r} in the turn")
        if "beat" not in message:
            raise InputError("the turn needs the beat maia comes in on")
        key = message.get("key", KEY_OF_PHRASE)
        if not isinstance(key, str) or len(key) > 40:
            raise InputError(f"key must be a key's name, {KEY_OF_PHRASE!r} or {KEY_OFF!r}")
        return cls(read_phrase(message.get("notes")), _whole(message["beat"], "beat", 0, MAX_SECONDS * 5),
                   _whole(message.get("bars", 2), "bars", 1, MAX_BARS), key,
                   _number(message.get("key_strength", 1.0), "key strength", 0, 1),
                   _whole(message.get("lowest", 21), "lowest key", 0, 127),
                   _whole(message.get("highest", 108), "highest key", 0, 127),
                   _number(message.get("density", 1.0), "density", 0.25, 4.0), bool(message.get("quantise", True)))


class _Answering(torch.nn.Module):
    """``model`` as one answer sees it (the same interface: forward, init_cache, step), except that the GPT's
    KV cache of the previous answer is reused for the part of the prompt it already holds (the dialogue so
    far: the loop feeds only the tokens after ``cache.length``), so that maia's reaction costs the new
    phrase's tokens, not the whole dialogue's. ``ids`` then lists what the cache holds."""

    def __init__(self, model, prompt_ids: list[int], config: SamplingConfig,
                 kept: tuple[list[int], object] | None = None):
        super().__init__()
        self.model, self.config, self.max_context = model, model.config, getattr(model, "max_context", None)
        # the tokens fed before the first sample: the prompt, or past the model's window what the loop keeps of it
        prompt_len = prompt_tokens_in_view(model, len(prompt_ids), config)
        self.kept = kept if prompt_len == len(prompt_ids) else None
        self.prompt, self.ids, self.caches, self.reused = list(prompt_ids), [], 0, 0

    def init_cache(self, batch_size):
        self.caches += 1
        if self.caches == 1 and self.kept is not None and batch_size == 1:
            ids, cache = self.kept
            same = 0
            for a, b in zip(ids, self.prompt[:-1], strict=False):  # at least the prompt's last token is fed
                if a != b:
                    break
                same += 1
            if same > 1 and isinstance(cache, KVCache):
                cache.length, self.ids, self.reused = same, self.prompt[:same], same  # positions past it are overwritten
                return cache
        self.ids = []  # a fresh cache (or, after the window slid, a re-primed one: not kept for the next turn)
        return self.model.init_cache(batch_size)

    def step(self, idx, cache):  # (B, T) -> (B, T, V)
        self.cache = cache
        self.ids += idx[0].tolist()  # B = 1: what the cache holds
        return self.model.step(idx, cache)

    def forward(self, idx):  # without a cache nothing is kept for the next answer (keep() says so)
        return self.model(idx)

    def keep(self) -> tuple[list[int], object] | None:
        """(the ids the cache holds, the cache) for the next answer: a GPT's KV cache that never slid."""
        cache = getattr(self, "cache", None)
        if self.caches != 1 or not isinstance(cache, KVCache) or cache.length != len(self.ids):
            return None
        return self.ids, cache


class Turn:
    """One answer being sampled: ``events()`` streams it, then it is part of the dialogue."""

    def __init__(self, duet: Duet, start: int, steps: int, prompt_ids: list[int], config: SamplingConfig,
                 controls: Controls | None, yours: np.ndarray):
        self.duet, self.start, self.steps, self.config, self.controls = duet, start, steps, config, controls
        self.yours = yours  # (N, 4) your phrase on the grid, as it joined the dialogue
        self.prompt_ids = prompt_ids
        self.notes: list[tuple[int, int, int, int]] = []  # (onset, duration, pitch, velocity) in steps

    def events(self) -> Iterator[tuple]:
        """maia's answer as it is sampled: ("on", pitch, seconds, velocity) when a key is struck and ("off",
        pitch, seconds) when it is released, times on the dialogue's clock; the notes join the dialogue."""
        vocab, cfg = self.duet.vocab, self.duet.vocab.config
        v0, w0, on0, off0 = vocab.velocity_offset, vocab.wait_offset, vocab.on_offset, vocab.off_offset

        t, velocity, sounding = self.start, bin_velocity(cfg.n_velocity_bins * 5 // 8, cfg.n_velocity_bins), {}
        sec = self.duet.seconds
        model = self.model = _Answering(self.duet.model, self.prompt_ids, self.config, self.duet.kept)
        self.duet.kept = None  # this answer's cache, until it is done
        # A key released at the step it was struck sounds one step: its "off" waits until the time moves on, so
        # that the events go out in time order (MIDI out sends them as they come, each stamped with its time).
        # A key struck twice at one step is struck once.
        played, instant = [], {}
        for (tok,) in generate(model, self.prompt_ids, self.config, vocab, fill_steps=self.steps,
                               controls=self.controls, open_with_note=True):
            if tok is None:
                break
            played.append(tok)
            for i in vocab.expand_id(tok):
                if v0 <= i < v0 + cfg.n_velocity_bins:
                    velocity = bin_velocity(i - v0, cfg.n_velocity_bins)
                elif w0 < i <= w0 + cfg.max_wait:
                    for p, held in instant.items():
                        yield from self._release(p, held, t, sec)
                    t, instant = t + i - w0, {}
                elif on0 + cfg.pitch_lo <= i <= on0 + cfg.pitch_hi:
                    p = i - on0
                    if p in instant or sounding.get(p, (None,))[0] == t:
                        continue  # struck already at this step
                    if p in sounding:  # struck again: the old note ends here
                        yield from self._release(p, sounding.pop(p), t, sec)
                    sounding[p] = (t, velocity)
                    yield ("on", p, sec(t), velocity)
                elif off0 + cfg.pitch_lo <= i <= off0 + cfg.pitch_hi and i - off0 in sounding:
                    held = sounding.pop(i - off0)
                    if held[0] == t:
                        instant[i - off0] = held
                    else:
                        yield from self._release(i - off0, held, t, sec)
        for p, held in instant.items():
            yield from self._release(p, held, t, sec)
        for p, held in list(sounding.items()):  # the fill releases every key; this only guards a cut-short turn
            yield from self._release(p, held, self.start + self.steps, sec)
        filled = bool(played) and played[-1] == vocab.end_id  # the fill's closing token: the span is complete
        self.duet._answered(self, model.keep(), self.prompt_ids + played[:-1] if filled else None)

    def _release(self, p: int, held: tuple[int, int], t: int, sec) -> Iterator[tuple]:
        onset, velocity = held
        self.notes.append((onset, max(1, t - onset), p, velocity))
        yield ("off", p, sec(max(t, onset + 1)))


class Duet:
    """One dialogue: the notes played so far (yours and maia's, on the grid), its tempo and composer, and the
    model that answers. Built once per connection; ``turn`` checks a request and returns maia's answer."""

    def __init__(self, model, vocab: Vocab, composer: str | None = None, bpm: float = 120.0,
                 sampling: SamplingConfig | None = None, max_prompt_tokens: int = DUET_PROMPT_TOKENS):
        from maia.generate import resolve_composer

        self.model, self.vocab = model, vocab
        self.composer = resolve_composer(vocab, composer)
        self.bpm = _number(bpm, "tempo (quarter notes per minute)", *BPM_RANGE)
        self.sampling = (sampling or SamplingConfig()).validate()
        self.max_prompt_tokens = min(int(max_prompt_tokens), DEFAULT_MAX_PROMPT_TOKENS)
        self.spq = vocab.config.steps_per_quarter
        self.time_signature = (4, 4)
        self.notes = np.zeros((0, 4), np.int64)  # (N, 4) onset, duration, pitch, velocity: the dialogue
        self.who = np.zeros(0, np.int64)  # (N,) USER or MAIA
        self.turns = 0
        self.end = 0  # the step where the dialogue so far ends (the last answer's last bar line)
        self.origin = 0  # the bar line from which maia hears the dialogue (it moves on when the dialogue is long)
        self.kept = None  # the last answer's KV cache and the ids it holds (_Answering.keep)
        self.heard: list[int] | None = None  # the dialogue from ``origin`` as maia heard and played it: tokens

    def seconds(self, step: int) -> float:
        return step * 60.0 / (self.bpm * self.spq)

    def piece(self) -> Piece:
        """The whole dialogue as one piece, at its tempo in 4/4."""
        return Piece(self.notes.copy(), self.spq, self.bpm, self.time_signature, self.composer)

    def mine(self) -> Piece:
        """Your notes only (the key lock's "your key" reads them)."""
        return Piece(self.notes[self.who == USER], self.spq, self.bpm, self.time_signature, self.composer)

    def _steps(self, phrase: np.ndarray, quantise: bool) -> np.ndarray:
        """Your phrase in seconds -> notes on the grid (N, 4), each at least one step (1/16 quantised)."""
        q = 3 if quantise and self.spq % 4 == 0 else 1
        per_step = self.bpm * self.spq / 60.0
        on = np.round(phrase[:, 1] * per_step / q).astype(np.int64) * q
        off = np.maximum(np.round(phrase[:, 2] * per_step / q).astype(np.int64) * q, on + q)
        return normalize_notes(on, off, phrase[:, 0].astype(np.int64), phrase[:, 3].astype(np.int64), self.vocab.config)

    def controls(self, request: Request, phrase: np.ndarray | None = None) -> Controls | None:
        """The steering of maia's answer: the key lock (your key by default: Krumhansl-Schmuckler on everything
        you played, with ``phrase``, notes on the grid), the register and the density; None when all are off."""
        lock = None
        if request.key == KEY_OF_PHRASE:
            yours = self.notes[self.who == USER]
            if phrase is not None:
                yours = np.concatenate([yours, phrase])
            tonic, mode, _ = estimate_key(yours)
            lock = (tonic, mode) if tonic >= 0 else None
        elif request.key and request.key != KEY_OFF:
            lock = parse_key(request.key)
        lo = None if request.lowest <= 21 else request.lowest
        hi = None if request.highest >= 108 else request.highest
        c = Controls(lock, request.key_strength, lo, hi, request.density).validate()
        return c if c.active else None

    def turn(self, message: dict | Request) -> Turn:
        """Your phrase in, maia's answer out (``Turn.events()`` samples it and adds it to the dialogue).
        InputError (one line, the dialogue unchanged) for a bad request."""
        request = message if isinstance(message, Request) else Request.read(message)
        if self.turns >= MAX_TURNS:
            raise InputError(f"this duet has had its {MAX_TURNS} turns: start a new one")
        if not len(request.notes):
            raise InputError("nothing was played: play a phrase, then maia answers")
        mine = self._steps(request.notes, request.quantise)
        start = request.beat * self.spq
        if start <= int(mine[:, 0].max()) or start < self.end:
            raise InputError(f"maia must come in after your phrase: beat {request.beat} is not after it")
        if start > max(self.end, int((mine[:, 0] + mine[:, 1]).max())) + MAX_GAP_BEATS * self.spq:
            raise InputError(f"maia comes in at most {MAX_GAP_BEATS} beats after your phrase, not at beat "
                             f"{request.beat}")
        mine[:, 1] = np.minimum(mine[:, 1], start - mine[:, 0])  # a key still down at the beat is released there
        controls = self.controls(request, mine)
        self.notes, self.who = self._with(mine, USER)
        self.turns += 1
        # What maia hears: the tokens it heard and played last turn, then your phrase and the rest to the beat,
        # so that its KV cache holds all but the phrase; or (the first turn, a phrase that began while maia
        # was still playing, a dialogue grown too long) the dialogue from ``origin`` on, encoded afresh.
        ids = self._heard_and(mine, start)
        if ids is None:
            prompt = self._prompt()
            ids = list(prompt.ids) + self._rest_ids(start - self.origin - prompt.steps)
        steps = request.bars * bar_steps(self.time_signature, self.spq)
        config = replace(self.sampling, variations=1,
                         max_new_tokens=token_budget(ids, start - self.origin, steps, DEFAULT_MAX_TOKENS))
        return Turn(self, start, steps, ids, config, controls, mine)

    def _heard_and(self, phrase: np.ndarray, start: int) -> list[int] | None:
        """``heard`` followed by ``phrase`` (on the grid, after the last answer) and the rest to ``start``, as
        tokens; None when that cannot be (no answer yet, the phrase began before it ended, too long)."""
        if self.heard is None or int(phrase[:, 0].min()) < self.end:
            return None
        piece = Piece(phrase - np.array([self.end, 0, 0, 0]), self.spq, self.bpm, self.time_signature, self.composer)
        tail = encode_ids(piece, self.vocab, self.composer, start=False, end=False)[1:]  # without the composer
        if self.vocab.merges:
            from maia.merges import apply_merges

            tail = apply_merges(tail, self.vocab)
        ids = self.heard + [int(i) for i in tail] + self._rest_ids(start - self.end - piece.end_step)
        return ids if len(ids) <= self.max_prompt_tokens else None

    def _prompt(self, limit: int | None = None):
        """The dialogue from ``origin`` (a bar line) on as a prompt (``prompt.steps`` counting from ``origin``);
        past ``limit`` tokens (``max_prompt_tokens``) the origin moves on, bar by bar, until the prompt is half
        ``max_prompt_tokens`` long, so that the next turns can grow it again, reusing the cache."""
        bar = bar_steps(self.time_signature, self.spq)

        def from_origin():
            notes = self.notes[self.notes[:, 0] >= self.origin] - np.array([self.origin, 0, 0, 0])
            piece = Piece(notes, self.spq, self.bpm, self.time_signature, self.composer)
            return build_prompt(self.vocab, self.composer, piece, max_tokens=DEFAULT_MAX_PROMPT_TOKENS * 64), len(notes)

        prompt, n = from_origin()
        if len(prompt.ids) > (self.max_prompt_tokens if limit is None else limit):
            while n > 1 and len(prompt.ids) > self.max_prompt_tokens // 2:
                self.origin += bar
                prompt, n = from_origin()
            self.kept = self.heard = None
        return prompt

    def prepare(self) -> None:
        """Between turns, while maia's answer still sounds: once the dialogue maia heard is 3/4 of
        ``max_prompt_tokens``, hear it from a later bar line now and prime a KV cache with that, so that the next
        turn feeds only your new phrase (instead of paying for the whole priming while you wait)."""
        if self.heard is None or len(self.heard) <= self.max_prompt_tokens * 3 // 4:
            return
        prompt = self._prompt(limit=0)  # from a later bar line: half max_prompt_tokens
        ids = list(prompt.ids) + self._rest_ids(self.end - self.origin - prompt.steps)
        with torch.inference_mode():
            cache = self.model.init_cache(1)
            if isinstance(cache, KVCache) and len(ids) < cache.k[0].shape[2]:
                for i in range(0, len(ids), PRIME_CHUNK):  # as maia.generate primes a cache
                    self.model.step(torch.tensor([ids[i:i + PRIME_CHUNK]], device=cache.k[0].device), cache)
                self.kept = (ids, cache)
        self.heard = ids

    def _with(self, notes: np.ndarray, who: int) -> tuple[np.ndarray, np.ndarray]:
        both = np.concatenate([self.notes, notes])
        whose = np.concatenate([self.who, np.full(len(notes), who, np.int64)])
        order = np.lexsort((both[:, 2], both[:, 0]))
        return both[order], whose[order]

    def _rest_ids(self, steps: int) -> list[int]:
        """Waits that advance ``steps`` grid steps, the longest first (as the encoding writes a rest)."""
        w = self.vocab.config.max_wait
        return [self.vocab.wait_offset + w] * (steps // w) + ([self.vocab.wait_offset + steps % w] if steps % w else [])

    def _answered(self, turn: Turn, kept, heard: list[int] | None) -> None:
        self.kept, self.heard = kept, heard
        if turn.notes:
            notes = np.array(sorted(turn.notes), np.int64)
            self.notes, self.who = self._with(notes, MAIA)
        self.end = turn.start + turn.steps


# ---- serving: streamed HTTP on the page's own server ----------------------------------------------------
MAX_DUETS = 8  # dialogues kept at once; one more is refused in one line (an idle one is dropped first)
IDLE_SECONDS = 1800.0  # a dialogue nobody played in for this long is dropped
MAX_MESSAGE_BYTES = 256 * 1024  # one turn's JSON (512 notes take about 20 KiB)


class Duets:
    """The server's dialogues, at most ``limit`` at once, by id. ``load`` gives an installed model by name ->
    (model, vocab), loaded once per server (maia.serving.Serving.load). ``routes`` serves them over HTTP:

        POST /maia/duet/start  {"model", "composer", "bpm", "top_k", "temperature", "seed"}  -> {"type": "ready", "duet": id}
        POST /maia/duet/turn   {"duet": id, "notes", "beat", "bars", "key", ...}  -> one JSON line per event, as
                               sampled: {"type": "on", "p", "t", "v"}, {"type": "off", "p", "t"}, then
                               {"type": "done", "turn", "end", "yours": [your phrase on the grid]}
        POST /maia/duet/end    {"duet": id}
        anything refused: {"type": "error", "message": one line} (status 400; in a stream, its last line)

    A turn's answer streams over the connection the page keeps open, so each note-on leaves as soon as its
    token is sampled, with no queue between (Gradio's queue adds a round trip per event: bench/duet_latency.py).
    """

    def __init__(self, load, limit: int = MAX_DUETS, idle: float = IDLE_SECONDS):
        import threading

        self.load, self.limit, self.idle = load, limit, idle
        self.duets: dict[str, list] = {}  # id -> [Duet, last used (monotonic s), answering]
        self.lock = threading.Lock()

    def start(self, message: dict) -> str:
        """A start message -> the new dialogue's id: model, composer, tempo and sampling (top_k, temperature,
        seed). InputError for a bad setting or when ``limit`` dialogues are being played."""
        import secrets
        import time

        if not isinstance(message, dict):
            raise InputError('a duet begins with {"model": ..., "composer": ..., "bpm": ...}')
        seed = message.get("seed", 0)
        sampling = SamplingConfig(top_k=_whole(message.get("top_k", SamplingConfig.top_k), "top-k", 0, 50),
                                  temperature=_number(message.get("temperature", 1.0), "temperature", 0.05, 5.0),
                                  seed=None if seed is None else _whole(seed, "seed", 0, 2**62 - 1))
        model, vocab = self.load(str(message.get("model") or ""))
        duet = Duet(model, vocab, message.get("composer"), message.get("bpm", 120), sampling)
        now = time.monotonic()
        with self.lock:
            for key, (_, used, busy) in list(self.duets.items()):
                if now - used > self.idle and not busy:
                    del self.duets[key]
            if len(self.duets) >= self.limit:
                raise InputError(f"maia is playing {self.limit} duets already: try again in a minute")
            key = secrets.token_hex(16)
            self.duets[key] = [duet, now, False]
        return key

    def take(self, key) -> Duet:
        """The dialogue ``key``, marked as answering (``release`` frees it); InputError if it is unknown or busy."""
        import time

        with self.lock:
            entry = self.duets.get(key) if isinstance(key, str) else None
            if entry is None:
                raise InputError("this duet is over (or the server restarted): start a new one")
            if entry[2]:
                raise InputError("maia is still answering: play on once it is your turn")
            entry[1], entry[2] = time.monotonic(), True
            return entry[0]

    def release(self, key: str) -> None:
        import time

        with self.lock:
            if key in self.duets:
                self.duets[key][1:] = [time.monotonic(), False]

    def end(self, key) -> None:
        with self.lock:
            self.duets.pop(key, None)

    def routes(self, prefix: str = "/maia/duet") -> list:
        """Starlette routes for the page's server (app.py: ``launch(app_kwargs={"routes": ...})``)."""
        from starlette.routing import Route

        return [Route(f"{prefix}/start", self._start, methods=["POST"]),
                Route(f"{prefix}/turn", self._turn, methods=["POST"]),
                Route(f"{prefix}/end", self._end, methods=["POST"])]

    @staticmethod
    async def _message(request) -> dict:
        return parse(await request.body())

    async def _start(self, request):
        import asyncio

        from starlette.responses import JSONResponse

        try:
            message = await self._message(request)
            return JSONResponse({"type": "ready", "duet": await asyncio.to_thread(self.start, message)})
        except InputError as e:
            return _refused(e)

    async def _end(self, request):
        from starlette.responses import JSONResponse

        try:
            self.end((await self._message(request)).get("duet"))
        except InputError as e:
            return _refused(e)
        return JSONResponse({"type": "ended"})

    def begin(self, message: dict) -> tuple[str, Duet, Turn]:
        """A turn message -> (its dialogue's id, the dialogue marked as answering, the turn); InputError (one line,
        the dialogue free again) for a refused one. ``events`` then samples the answer."""
        message = dict(message)
        key = message.pop("duet", None)
        duet = self.take(key)
        try:
            return key, duet, duet.turn(message)
        except BaseException:
            self.release(key)
            raise

    def events(self, key: str, duet: Duet, turn: Turn) -> Iterator[dict]:
        """The answer's messages as sampled (then "done", or one "error" line); frees the dialogue at the end."""
        from maia.errors import MaiaError

        try:
            for e in turn.events():
                yield {"type": e[0], "p": e[1], "t": round(e[2], 4)} | ({"v": e[3]} if e[0] == "on" else {})
            yield {"type": "done", "turn": duet.turns, "end": round(duet.seconds(duet.end), 4),
                   "reused": turn.model.reused, "prompt": len(turn.prompt_ids),
                   "yours": [[int(p), round(duet.seconds(s), 4), round(duet.seconds(s + d), 4), int(v)]
                             for s, d, p, v in turn.yours.tolist()]}
            duet.prepare()  # after "done" has gone out: the next turn's priming, off its critical path
        except MaiaError as e:
            yield {"type": "error", "message": str(e)}
        except Exception as e:  # a bug: its traceback to the server's log, one line to the page
            import logging

            logging.getLogger("maia").exception("duet failed")
            yield {"type": "error", "message": f"internal error ({type(e).__name__}); please start the duet again"}
        finally:
            self.release(key)

    async def _turn(self, request):
        import asyncio
        import json

        from starlette.responses import StreamingResponse

        try:
            key, duet, turn = self.begin(await self._message(request))
        except InputError as e:
            return _refused(e)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()

        def sample():  # in a worker thread: each event goes out as soon as it is sampled
            try:
                for m in self.events(key, duet, turn):
                    loop.call_soon_threadsafe(queue.put_nowait, m)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        async def lines():
            worker = loop.run_in_executor(None, sample)
            while (m := await queue.get()) is not None:
                yield json.dumps(m) + "\n"
            await worker

        return StreamingResponse(lines(), media_type="application/x-ndjson",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def parse(body: bytes | str | None) -> dict:
    """A message's JSON text -> dict; InputError for anything else or over MAX_MESSAGE_BYTES."""
    import json

    if len(body or "") > MAX_MESSAGE_BYTES:
        raise InputError(f"the phrase is too long (over {MAX_MESSAGE_BYTES // 1024} KiB)")
    try:
        message = json.loads(body or "")
    except ValueError:
        raise InputError("a duet's messages are JSON objects") from None
    if not isinstance(message, dict):
        raise InputError("a duet's messages are JSON objects")
    return message


def _refused(e: Exception):
    import logging

    from starlette.responses import JSONResponse

    logging.getLogger("maia").info("duet refused: %s", e)
    return JSONResponse({"type": "error", "message": str(e)}, status_code=400)

"""Guards against collapse: per-row state of the music being sampled, turned into a logit bias each step.

A language model of notes sometimes gets stuck: a key is struck and never released (the sequence then ends
with the note still down, and decoding cuts it 8 bars later), or two keys alternate for many seconds. Real
piano music does neither: no prompt of the held-out pieces holds a note over 2.5 s, and their longest
stretch of onsets on two pitches averages 0.9 s. So, while sampling (``maia.generate`` applies these):

- **Hanging notes are released musically.** A key held longer than ``max_hold_beats`` quarter notes gets a
  bias on its note-off that grows by ``RAMP`` nats per beat past the limit: the model still chooses the
  moment (after a wait, with the other voices), it just cannot forget the key.
- **Loops are broken.** Once the onsets since some moment have used at most two pitches for longer than
  ``max_loop_beats`` (or at most four, a chord struck over and over, for twice that, or six for four times), striking them again
  costs ``RAMP`` nats per beat past the limit: another pitch, or a rest, becomes the likelier move. A
  figure repeated with the odd different note (six pitches carrying 90% of 32 beats' onsets) costs RAMP,
  and RAMP more per ``max_loop_beats`` that it goes on (at most four times RAMP).
- **The piece ends with every key released.** ``<end>`` waits while a key is down; when the tokens left
  would not cover the held keys' note-offs, or the time budget of a fixed length is spent (``closing``), only note-offs are allowed.

Everything is counted in grid steps, so it holds at any tempo; all of it is off with ``None`` limits.
"""

from __future__ import annotations

import torch

from maia.vocab import Vocab

RAMP = 3.0  # nats of bias per quarter note past a limit
# (pitches, limit as a multiple of max_loop_beats): two pitches for max_loop_beats, one chord of up to four
# struck over and over for twice as long, or a figure on six for four times as long (the piano model's other
# ways of getting stuck). In the held-out piano music each limit is passed at about 0.3-0.6% of onsets.
LOOPS = ((2, 1.0), (4, 2.0), (6, 4.0))
# (pitches, window as a multiple of max_loop_beats, share): when six pitches carry 90% of the onsets of the
# last 32 beats, striking them costs RAMP nats, and RAMP more per max_loop_beats while it lasts. Real piano music does this at 0.3% of its onsets; the piano
# model continuing the Lacrimosa did it at 37% (a chord figure repeated for a minute, with the odd other note).
STAGNATION = (6, 8.0, 0.9)


class Guards:
    """Tracks B rows of tokens; ``bias`` gives (B, V) additions to the logits, or None when nothing applies."""

    def __init__(self, vocab: Vocab, rows: int, n_logits: int, device, max_hold_beats: float | None,
                 max_loop_beats: float | None, prompt_ids=()):
        cfg = vocab.config
        self.spq, self.n_logits, self.device = cfg.steps_per_quarter, n_logits, device
        self.hold = None if max_hold_beats is None else max_hold_beats * self.spq
        self.loop = None if max_loop_beats is None else max_loop_beats * self.spq
        lo, hi = cfg.pitch_lo, cfg.pitch_hi
        on0, off0, w0 = vocab.on_offset, vocab.off_offset, vocab.wait_offset
        self.on0, self.off0 = on0, off0
        self.on_ids = list(range(on0 + lo, on0 + hi + 1))  # the note-on tokens (merges holding one are kept)
        # Per token id: (steps it waits, pitches it strikes, pitches it releases), merges expanded in order.
        self.table: list[tuple[tuple[str, int], ...]] = []
        for i in range(len(vocab)):
            ev = []
            for t in vocab.expand_id(i):
                if w0 < t <= w0 + cfg.max_wait:
                    ev.append(("w", t - w0))
                elif on0 + lo <= t <= on0 + hi:
                    ev.append(("on", t - on0))
                elif off0 + lo <= t <= off0 + hi:
                    ev.append(("off", t - off0))
            self.table.append(tuple(ev))
        self.end_id = vocab.end_id
        self.now = [0] * rows  # grid step of each row
        self.held: list[dict[int, int]] = [{} for _ in range(rows)]  # pitch -> onset step
        self.onsets: list[list[tuple[int, int]]] = [[] for _ in range(rows)]  # (step, pitch), recent first kept
        self.stuck_since: list[int | None] = [None] * rows  # step since which the stagnation rule has fired
        for tok in prompt_ids:  # the prompt's state: its held keys and its last onsets
            if vocab.fim and int(tok) == vocab.suffix_id:  # a fill-in-the-middle prompt: the music before the gap
                break
            self.update([int(tok)] * rows)

    def update(self, toks) -> None:
        """Advances each row by its new token (None or out of range: nothing)."""
        for r, tok in enumerate(toks):
            if tok is None or tok >= len(self.table):
                continue
            for kind, x in self.table[tok]:
                if kind == "w":
                    self.now[r] += x
                elif kind == "on":
                    self.held[r][x] = self.now[r]
                    self.onsets[r].append((self.now[r], x))
                    if len(self.onsets[r]) > 128:
                        del self.onsets[r][:32]
                else:
                    self.held[r].pop(x, None)

    def loop_run(self, r: int, k: int = 2) -> tuple[int, set[int]]:
        """(steps, pitches): how long the onsets up to now have used at most ``k`` pitches, and which."""
        pitches: set[int] = set()
        start = self.now[r]
        for step, p in reversed(self.onsets[r]):
            if p not in pitches and len(pitches) == k:
                break
            pitches.add(p)
            start = step
        return self.now[r] - start, pitches

    def stagnant(self, r: int) -> list[int]:
        """The few pitches that nearly all of the last ``STAGNATION`` window's onsets used (a figure repeated
        with the odd different note, which the exact loop rule misses), or [] when the music moves."""
        k, times, share = STAGNATION
        window = times * self.loop
        onsets = self.onsets[r]
        recent = [p for step, p in onsets if step > self.now[r] - window]
        covered = len(recent) < len(onsets) or (onsets and onsets[0][0] <= self.now[r] - window)
        if not covered and len(recent) < 64:
            return []
        counts: dict[int, int] = {}
        for p in recent:
            counts[p] = counts.get(p, 0) + 1
        top = sorted(counts, key=counts.get, reverse=True)[:k]
        return top if recent and sum(counts[p] for p in top) >= share * len(recent) else []

    def bias(self, tokens_left: int | None = None, closing=None) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(bias (B, V), replace (B,) bool) for the next token, or None when nothing applies. ``tokens_left``
        counts this step; ``closing`` (B,) bool marks rows whose time is spent. A row that must close with
        keys still down gets ``replace``: its bias allows only their note-offs, whatever else would."""
        rows = len(self.now)
        # Gathered in Python and written into one tensor at the end: a tensor index per entry cost more than
        # the rest of a sampling step. Each (row, id) gets one value (added to 0, so the same float32 as before).
        adds: dict[tuple[int, int], float] = {}
        closes: list[tuple[int, list[int] | None]] = []  # (row, the note-offs it may play, or None: no note-on)

        def at(r: int, i: int, v: float) -> None:
            adds[r, i] = adds.get((r, i), 0.0) + v

        for r in range(rows):
            held = self.held[r]
            must_close = (closing is not None and bool(closing[r])) or (tokens_left is not None and 0 < tokens_left <= len(held) + 1)
            if must_close:  # keys down: only their note-offs; nothing down and no room to release a new key: strike none
                closes.append((r, [self.off0 + p for p in held] if held else None))
                continue
            if held:  # the model may not end the piece with a key down: it releases it first
                at(r, self.end_id, float("-inf"))
            if self.hold is not None:
                for p, since in held.items():
                    over = self.now[r] - since - self.hold
                    if over > 0:
                        at(r, self.off0 + p, RAMP * over / self.spq)
            if self.loop is not None and self.onsets[r]:
                for k, limit in LOOPS:
                    steps, pitches = self.loop_run(r, k)
                    over = steps - limit * self.loop
                    if over > 0:
                        for p in pitches:
                            at(r, self.on0 + p, -RAMP * over / self.spq)
                        break
                else:
                    stuck = self.stagnant(r)
                    if not stuck:
                        self.stuck_since[r] = None
                    else:  # RAMP nats at once, and RAMP more per max_loop_beats it goes on (at most 4 RAMP)
                        if self.stuck_since[r] is None:
                            self.stuck_since[r] = self.now[r]
                        push = RAMP * min(4.0, 1.0 + (self.now[r] - self.stuck_since[r]) / self.loop)
                        for p in stuck:
                            at(r, self.on0 + p, -push)
        if not adds and not closes:
            return None
        out = torch.zeros(rows, self.n_logits)
        if adds:
            at_rows, at_ids = zip(*adds, strict=True)
            out[list(at_rows), list(at_ids)] = torch.tensor(list(adds.values()))
        replace = torch.zeros(rows, dtype=torch.bool)
        for r, offs in closes:
            if offs is None:
                out[r, self.on_ids] = float("-inf")
            else:
                out[r] = float("-inf")
                out[r, offs] = 0.0
                replace[r] = True
        return out.to(self.device), replace.to(self.device)

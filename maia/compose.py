"""One composition: the door the page, the CLI, the library and the evaluation all go through.

    comp = Composition.continuation(model, vocab, prompt, config, bars=16, end=True)   # or Composition.passage(...)
    for step in comp.run():           # sampled here; or comp.run(steps) with a sampler process's steps
        ...                           # comp.pieces(): the music so far, one Piece per variation
    for piece, ending in comp.finish():   # candidates chosen, the theme brought back, the cadence written
        outputs.write(piece, midi=...)    # finishing goes through maia/outputs.py

A *continuation* follows a prompt (maia.generate.Prompt) for ``config.max_new_tokens`` tokens, or for a span in
bars or seconds planned by maia.form.layout (every key released on the last bar line), with an ending in the
home key and a form when asked. With an ending and ``key_candidates`` > 1 each variation is sampled that many
times in the same batch (rows v, v + variations, ...: candidate c of variation v draws from seed + v + c *
variations, so candidate 0 has the draws of the music without candidates) and the first that stays in the
home key is kept (maia.form.keep_in_key). A *passage* rewrites the music between two grid steps of a piece with
a fill-in-the-middle model (maia/infill.py), everything around it kept note for note.

The rows of token ids are collected here and only here; ``pieces`` decodes them; ``finish`` makes the music
whole. Nothing here reads files, renders audio or knows about requests (maia/playground.py and
maia/__main__.py do).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from maia.encoding import Piece
from maia.generate import Prompt, SamplingConfig, generate, ids_to_piece, infill, time_steps
from maia.vocab import Vocab

PASSAGE_TOKENS = 512  # most tokens a rewritten passage may take (and at most half the model's window)


def passage_tokens(model, tokens: int = PASSAGE_TOKENS) -> int:
    """The most tokens a rewritten passage may take: ``tokens``, and at most half the model's window (the
    music before and after the gap shares the rest)."""
    window = getattr(model, "max_context", None)
    return min(tokens, (window or 2 * tokens) // 2)


@dataclass
class Composition:
    """What one request composes and how its tokens become music (make one with ``continuation`` or
    ``passage``). ``rows`` holds, per sampled row, the ids that decode to its music: the variations first, then
    their key candidates."""

    model: object
    vocab: Vocab
    config: SamplingConfig  # as asked: ``config.variations`` pieces come out
    composer: str
    rows: list[list[int]]
    decode_row: Callable[[list[int]], Piece]
    position_row: Callable[[list[int]], int]  # one row -> the grid step its sampling has reached
    base: int = 0  # ids in each row before sampling
    prompt: Prompt | None = None  # a continuation's
    lay: object = None  # maia.form.Layout: a set length (continuations)
    form: str | None = None
    controls: object = None  # maia.controls.Controls
    candidates: int = 1  # rows sampled per variation (key candidates)
    prompt_piece: Piece | None = None  # the prompt as read, for its key (default: as the model hears it)
    span: object = None  # maia.infill.Span: a passage's
    stop_id: int | None = None  # the token that ends a row: the end of the piece, or of a passage
    steering: object = None  # Controls while sampling when they differ from ``controls`` (maia.form.homecoming)
    span_steps: int | None = None  # grid steps every row fills exactly, without a plan (``steps=``)
    ended: list[bool] = field(default_factory=list)  # per variation: its last token was ``stop_id``

    # ---- making one -----------------------------------------------------------------------------------
    @classmethod
    def continuation(cls, model, vocab: Vocab, prompt: Prompt, config: SamplingConfig, bars: int | None = None,
                     seconds: float | None = None, end: bool = False, form: str | None = None, theme_bars: int = 4,
                     controls=None, key_candidates: int = 1, prompt_piece: Piece | None = None,
                     max_tokens: int = 4096, steps: int | None = None) -> Composition:
        """``prompt`` continued for ``config.max_new_tokens`` tokens, or for ``bars`` bars / ``seconds`` (the
        tokens raised to what the span needs, up to ``max_tokens``; InputError for a span or form that does
        not fit), ending in the home key with ``end`` and bringing the opening back as ``form`` asks; or for
        exactly ``steps`` grid steps, unplanned (an evaluation's span of real music)."""
        from maia import form as forms

        lay, k = None, 1
        if bars is not None or seconds is not None:
            lay = forms.layout(vocab, prompt, bars, seconds, end, form, theme_bars, max_tokens)
            config = replace(config, max_new_tokens=min(max_tokens, max(config.max_new_tokens, lay.budget)))
            source = prompt_piece if prompt_piece is not None else lay.heard
            k = forms.key_candidates_for(end, source, key_candidates, config.variations)
        return cls(model, vocab, config, prompt.composer, [list(prompt.ids) for _ in range(config.variations * k)],
                   lambda ids: ids_to_piece(ids, vocab, prompt), lambda ids: time_steps(ids, vocab), len(prompt.ids),
                   prompt=prompt, lay=lay, form=form if lay is not None else None, controls=controls, candidates=k,
                   prompt_piece=prompt_piece, stop_id=vocab.end_id, span_steps=steps)

    @classmethod
    def passage(cls, model, vocab: Vocab, piece: Piece, start: int, end: int, composer: str,
                config: SamplingConfig, controls=None) -> Composition:
        """``piece`` with grid steps [start, end) to be written anew by a fill-in-the-middle model, in at most
        ``config.max_new_tokens`` tokens (passage_tokens caps them by the window). ``composer``: a name the
        vocabulary knows (maia.generate.resolve_composer)."""
        from maia.infill import join_span, split_span

        middle = passage_tokens(model, config.max_new_tokens)
        span = split_span(piece, vocab, composer, start, end, getattr(model, "max_context", None), middle)
        return cls(model, vocab, replace(config, max_new_tokens=middle), composer,
                   [[] for _ in range(config.variations)], lambda ids: join_span(span, ids, vocab),
                   lambda ids: start + time_steps(ids, vocab), controls=controls, span=span, stop_id=vocab.fim_end_id)

    # ---- sampling -------------------------------------------------------------------------------------
    @property
    def variations(self) -> int:
        return self.config.variations

    @property
    def sampling(self) -> SamplingConfig:
        """The config the rows are sampled with: every candidate is a row of the batch."""
        return replace(self.config, variations=len(self.rows))

    @property
    def fill_steps(self) -> int | None:
        """Grid steps each row fills exactly (a set length), else None."""
        return self.lay.steps if self.lay is not None else self.span_steps

    def steps(self) -> Iterator[list[int | None]]:
        """maia.generate's per-step tokens for this composition, sampled in this thread."""
        controls = self.steering if self.steering is not None else self.controls
        if self.span is not None:
            s = self.span
            return infill(self.model, s.prefix_ids, s.suffix_ids, s.steps, self.sampling, self.vocab, controls)
        return generate(self.model, self.prompt.ids, self.sampling, self.vocab, fill_steps=self.fill_steps,
                        controls=controls)

    def add(self, step: Sequence[int | None]) -> None:
        """One sampled step (a token or None per row) appended to the rows."""
        if not self.ended:
            self.ended = [False] * self.variations
        for i, t in enumerate(step):
            if t is not None:
                self.rows[i].append(t)
                if i < self.variations:
                    self.ended[i] = t == self.stop_id

    def run(self, steps: Iterable[list[int | None]] | None = None) -> Iterator[list[int | None]]:
        """Samples (``steps``: from elsewhere, e.g. a sampler process; default ``self.steps()``), appending
        each step to the rows before yielding it."""
        for step in self.steps() if steps is None else steps:
            self.add(step)
            yield step

    def sample(self, on_step: Callable[[list[int | None]], None] | None = None) -> Composition:
        """Samples to the end here; ``on_step`` is called after each step (a progress bar)."""
        for step in self.run():
            if on_step is not None:
                on_step(step)
        return self

    # ---- the music ------------------------------------------------------------------------------------
    @property
    def made(self) -> int:
        """New tokens in the longest row."""
        return max(len(r) for r in self.rows) - self.base

    def pieces(self, rows: int | None = None) -> list[Piece]:
        """The music so far of the variations (``rows``: of that many rows, candidates included)."""
        return [self.decode_row(ids) for ids in self.rows[: self.variations if rows is None else rows]]

    def positions(self) -> list[int]:
        """Per variation, the grid step its sampling has reached."""
        return [self.position_row(ids) for ids in self.rows[: self.variations]]

    @property
    def shaped(self) -> bool:
        """Whether ``finish`` changes the music sampled (a form, an ending, or a candidate to choose)."""
        return self.lay is not None and (self.lay.end or self.lay.sections is not None)

    @property
    def hold(self) -> int | None:
        """The first grid step that finishing may change (None: nothing changes): the live audio waits there.
        With key candidates another row may be kept, so everything after the prompt may change."""
        if not self.shaped:
            return None
        return self.lay.prompt_steps if self.candidates > 1 else self.lay.hold

    def key(self, piece: Piece | None = None) -> tuple[int, str]:
        """The home key: the key lock's, else the prompt's (else ``piece``'s, composing from nothing)."""
        from maia.form import home_key

        lock = self.controls.key if self.controls is not None else None
        source = self.prompt_piece if self.prompt_piece is not None else self.lay.heard
        return home_key(source if len(source.notes) else None, lock, piece)

    def choose(self) -> tuple[list[Piece], list[int]]:
        """Per variation, the continuation kept: the first of its candidates in the home key (or its
        relative); and which candidate that was (0: the first, the one a page shows while sampling)."""
        from maia.form import keep_in_key

        pieces = self.pieces(len(self.rows))
        if self.candidates <= 1:
            return pieces, [0] * self.variations
        v = self.variations
        picks = keep_in_key(pieces, v, self.key(pieces[0]), self.lay.prompt_steps)
        return [pieces[i + v * c] for i, c in enumerate(picks)], picks

    def shape(self, pieces: list[Piece], candidates: int = 4) -> list[tuple[Piece, object]]:
        """Each variation with the theme brought back and the cadence written (maia.form.shape, ``candidates``
        endings each, the likeliest kept): [(Piece, maia.form.Ending or None)]."""
        from maia import form as forms

        if not self.shaped:
            return [(p, None) for p in pieces]
        return [forms.shape(self.model, self.vocab, self.composer, self.lay, p, self.config, self.controls,
                            candidates, self.prompt_piece) for p in pieces]

    def finish(self, candidates: int = 4) -> list[tuple[Piece, object]]:
        """The finished music, one (Piece, Ending or None) per variation: candidates chosen, then shaped."""
        return self.shape(self.choose()[0], candidates)


def compose(model, vocab: Vocab, prompt: Prompt, config: SamplingConfig, bars: int | None = None,
            seconds: float | None = None, end: bool = False, controls=None, prompt_piece: Piece | None = None,
            max_tokens: int = 4096, candidates: int = 4, on_step: Callable[[list[int | None]], None] | None = None,
            form: str | None = None, theme_bars: int = 4, key_candidates: int = 1, home: float = 0.0):
    """A whole piece per variation, sampled here: [(Piece, Ending or None)] (Composition.continuation, then
    ``finish``); ``home`` > 0 adds maia.form.homecoming's late key lock at that strength while sampling."""
    from maia.form import homecoming

    comp = Composition.continuation(model, vocab, prompt, config, bars, seconds, end, form, theme_bars, controls,
                                    key_candidates, prompt_piece, max_tokens)
    if home > 0 and comp.lay is not None:
        comp.steering = homecoming(comp.lay, controls, prompt_piece, home)
    return comp.sample(on_step).finish(candidates)


__all__ = ["PASSAGE_TOKENS", "Composition", "compose", "passage_tokens"]

"""One object for the library: a loaded model that takes pieces and gives pieces, never token ids.

    import maia

    piano = maia.load("piano")                                       # a shipped model's name, or a model folder
    piece = piano.continue_("assets/prompts/lacrimosa.mid", composer="mozart", bars=8, end=True, seed=1)
    piece.write_midi("lacrimosa_continued.mid")

``continue_`` (the underscore because ``continue`` is Python's), ``infill`` and ``score`` take a
``maia.encoding.Piece`` or a path to a MIDI or score file, and return Pieces (``score``: a dict of figures).
Underneath is the functional layer, for those who need ids, streaming or their own loop:
maia.checkpoint.load_model, maia.compose.Composition (the door the page and the CLI use too), maia.generate
(build_prompt, generate, infill, ids_to_piece),
maia.infill (split_span, join_span) and maia.scoring.score_piece. Nothing here samples on its own.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

from maia.encoding import Piece
from maia.errors import InputError
from maia.limits import Limits
from maia.vocab import Vocab


def load(name: str | Path | None = None, device: str | None = None, limits: Limits | None = None) -> Maia:
    """The model called ``name`` (piano, sparse, lstm: see ``python -m maia info``) or the model folder at
    ``name``, with its vocabulary and config; None: the default model. ``limits`` (maia/limits.py; default:
    the MAIA_* environment) says where installed models live (MAIA_MODELS_DIR) and caps prompts and
    lengths. ``device``: "cpu" or "cuda" (default: the limits', CUDA when available)."""
    from maia.checkpoint import load_model
    from maia.registry import default_model, models_root, resolve_model

    limits = Limits.from_env() if limits is None else limits
    root = models_root(limits.models_dir)
    name = name if name is not None else default_model(root)
    if name is None:
        raise InputError(f"no model installed in {root}: train one, or pass a model folder")
    folder = resolve_model(name, root)  # CheckpointError listing the installed models
    device = device or limits.torch_device()
    model, vocab, config = load_model(folder, device=device)
    return Maia(model, vocab, config, Path(name).name, device, limits)


@dataclass
class Maia:
    """A model with its vocabulary and config.json (``maia.load`` makes one). Every call is independent:
    the same arguments and seed give the same music."""

    model: object  # the torch module, in eval mode on ``device``
    vocab: Vocab
    config: dict  # the model folder's config.json: model settings, training, metrics
    name: str = "model"
    device: str = "cpu"
    limits: Limits = field(default_factory=Limits)  # caps on prompts and lengths

    @property
    def composers(self) -> list[str]:
        """The composers this model can be asked to imitate (``composer=``), "unknown" among them."""
        return list(self.vocab.composers)

    def read(self, piece: Piece | str | Path) -> Piece:
        """A Piece as it is, or the MIDI / score file at a path read onto this model's grid."""
        if isinstance(piece, Piece):
            return piece
        from maia.encoding import read

        return read(piece, self.vocab.config, max_bytes=self.limits.max_input_bytes,
                    max_quarters=self.limits.max_quarters)

    def _sampling(self, tokens: int, seed: int | None, top_k: int | None, top_p: float | None, min_p: float | None,
                  temperature: float, variations: int):
        from maia.generate import SamplingConfig

        k = SamplingConfig.top_k if top_k is None else top_k  # None: the default chosen in docs/models.md
        return SamplingConfig(max_new_tokens=tokens, top_k=k, top_p=top_p, min_p=min_p, temperature=temperature,
                              seed=seed, variations=variations).validate(self.limits.max_tokens)

    def continue_(self, prompt: Piece | str | Path | None = None, *, composer: str | None = None,
                  bars: int | None = None, seconds: float | None = None, end: bool = False, form: str | None = None,
                  theme_bars: int = 4, tokens: int = 512, seed: int | None = 0, top_k: int | None = None,
                  top_p: float | None = None, min_p: float | None = None, temperature: float = 1.0,
                  variations: int = 1, controls=None, key_candidates: int = 1) -> Piece | list[Piece]:
        """``prompt`` (a Piece, a file, or None: from nothing) followed by its continuation, as one Piece;
        ``variations`` > 1 gives a list of that many.

        Length: ``tokens`` new tokens, or exactly ``bars`` bars (in the prompt's metre) or ``seconds``, ending
        on the bar line with every key released. ``end``: close on the home key's tonic chord; ``form``
        ("ABA", "AABA", "ABACA", "rondo"): bring the opening ``theme_bars`` back (maia/form.py; both need a
        length); ``key_candidates`` (with ``end``): keep the first of that many continuations that stays in the
        home key. Sampling: ``seed`` (None: a fresh one), ``top_k``, ``top_p``, ``min_p``, ``temperature``;
        ``controls``: a maia.controls.Controls (key lock, register, density). A prompt longer than the
        limits keeps its last bars, with a warning."""
        from maia.compose import Composition
        from maia.generate import build_prompt

        if (end or form) and bars is None and seconds is None:
            raise InputError(f"{'end' if end else 'form'} needs a length: pass bars= (or seconds=)")
        config = self._sampling(tokens, seed, top_k, top_p, min_p, temperature, variations)
        piece = self.read(prompt) if prompt is not None else None
        start = build_prompt(self.vocab, composer, piece, max_tokens=self.limits.max_prompt_tokens)
        if start.message:
            warnings.warn(start.message, stacklevel=2)
        comp = Composition.continuation(self.model, self.vocab, start, config, bars, seconds, end, form, theme_bars,
                                        controls, key_candidates, piece, self.limits.max_tokens)
        pieces = [p for p, _ in comp.sample().finish()]
        return pieces[0] if variations == 1 else pieces

    def infill(self, piece: Piece | str | Path, start: float, end: float, *, composer: str | None = None,
               tokens: int = 512, seed: int | None = 0, top_k: int | None = None, top_p: float | None = None,
               temperature: float = 1.0, variations: int = 1, controls=None) -> Piece | list[Piece]:
        """``piece`` with the music from beat ``start`` to beat ``end`` (quarter notes from 0, end exclusive)
        written anew, everything else kept note for note; ``variations`` > 1 gives a list. Needs a model
        trained to fill in the middle (the shipped piano model is one). ``tokens``: most tokens for the
        passage (at most half the model's window)."""
        from maia.compose import Composition
        from maia.generate import resolve_composer
        from maia.infill import beats_to_steps

        if not self.vocab.fim:
            raise InputError(f"model {self.name} was not trained to fill in the middle")
        piece = self.read(piece)
        lo, hi = beats_to_steps(piece, start, end)
        config = self._sampling(tokens, seed, top_k, top_p, None, temperature, variations)
        comp = Composition.passage(self.model, self.vocab, piece, lo, hi, resolve_composer(self.vocab, composer),
                                   config, controls)
        pieces = comp.sample().pieces()
        return pieces[0] if variations == 1 else pieces

    def score(self, piece: Piece | str | Path, composer: str | None = None) -> dict:
        """How the model hears ``piece``: bits_per_note (lower: less surprising), bits_per_token, bits,
        notes, tokens, by_kind (bits per note on pitch, timing, dynamics) and surprise (per note)."""
        from maia.generate import resolve_composer
        from maia.scoring import model_window, score_piece

        piece = self.read(piece)
        name = resolve_composer(self.vocab, composer)
        return score_piece(self.model, self.vocab, piece, name, model_window(self.model, self.config), self.device)

    def __repr__(self) -> str:
        return f"Maia({self.name!r}: {self.config.get('kind')}, {len(self.vocab)} tokens, {self.device})"


__all__ = ["Maia", "load"]

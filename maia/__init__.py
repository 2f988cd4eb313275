"""maia: an AI composer of piano music. The public API, pieces in and pieces out (maia/library.py):

    import maia

    piano = maia.load("piano")                               # a shipped model's name, or a model folder
    piece = piano.continue_("assets/prompts/lacrimosa.mid", composer="mozart", bars=8, end=True)
    piece.write_midi("lacrimosa_continued.mid")              # also piano.infill(piece, 4, 8), piano.score(piece)

and the functional layer underneath it, tokens and ids:

    from maia import read, encode, decode, load_model, generate, SamplingConfig

    piece = read("assets/prompts/lacrimosa.mid")            # MIDI or score -> Piece
    tokens = encode(piece)                                   # notewise tokens: ["<composer:unknown>", ...]
    model, vocab, _ = load_model("assets/models/piano")      # a model folder (safetensors + config.json)
    ...

Imports are lazy, so ``import maia`` stays cheap and loads torch only when a model is used.
"""

from __future__ import annotations

__all__ = ["Maia", "Piece", "SamplingConfig", "build_prompt", "decode", "encode", "generate", "generate_ids", "load",
           "load_model", "read"]

_WHERE = {"load": "maia.library", "Maia": "maia.library",
          "Piece": "maia.encoding", "read": "maia.encoding", "encode": "maia.encoding", "decode": "maia.encoding",
          "load_model": "maia.checkpoint", "generate": "maia.generate", "generate_ids": "maia.generate",
          "SamplingConfig": "maia.generate", "build_prompt": "maia.generate"}


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'maia' has no attribute {name!r}")

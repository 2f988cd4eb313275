"""maia: an AI composer of piano music. The public API:

    from maia import read, encode, decode, load_model, generate, SamplingConfig

    piece = read("assets/prompts/lacrimosa.mid")            # MIDI or score -> Piece
    tokens = encode(piece)                                   # notewise tokens: ["<composer:unknown>", ...]
    model, vocab, _ = load_model("assets/models/piano")      # a model folder (safetensors + config.json)
    ...

Imports are lazy, so ``import maia`` stays cheap and loads torch only when a model is used.
"""

from __future__ import annotations

__all__ = ["Piece", "SamplingConfig", "build_prompt", "decode", "encode", "generate", "generate_ids",
           "load_model", "read"]

_WHERE = {"Piece": "maia.encoding", "read": "maia.encoding", "encode": "maia.encoding", "decode": "maia.encoding",
          "load_model": "maia.checkpoint", "generate": "maia.generate", "generate_ids": "maia.generate",
          "SamplingConfig": "maia.generate", "build_prompt": "maia.generate"}


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'maia' has no attribute {name!r}")

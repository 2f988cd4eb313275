"""Start a model from a trained one's weights (``train.init``), so that no CPU-hour is spent twice.

What may differ between the trained model and the new one:
- the vocabulary: token rows are copied by token string (a note is ``p60`` in both); a token the old
  vocabulary lacks starts from ``<composer:unknown>``'s row if it is a composer, else from the mean row;
- the context: a longer ``block_size`` tiles the learnt position embeddings (position i starts as
  position i mod old_block_size), which keeps the local structure attention relies on;
- dropout;
- the kind, from ``gpt`` to ``sparse_gpt``: both name their weights alike, only attention differs.
Everything else (layers, heads, width) must match.
"""

from __future__ import annotations

import dataclasses
import functools

import torch

from maia.checkpoint import load_model
from maia.errors import MaiaError
from maia.vocab import Vocab, composer_token

FREE_FIELDS = {"vocab_size", "block_size", "dropout", "attn_dropout"}
VOCAB_ROWS = {"transformer.wte.weight", "lm_head.weight", "embedding.weight", "head.weight", "head.bias"}


def init_config(folder, kind: str, overrides: dict) -> dict:
    """The new model's config: the trained model's, with the keys the new run may change."""
    old, _, saved = _load(folder)
    old_cfg = dataclasses.asdict(old.config)
    shared = dict(old_cfg)
    bad = {k: (old_cfg[k], v) for k, v in overrides.items() if k in old_cfg and k not in FREE_FIELDS and old_cfg[k] != v}
    if bad:
        raise MaiaError(f"--init {folder}: the new model differs in {bad} (old, new); only {sorted(FREE_FIELDS)} may")
    if saved["kind"] not in (kind, "gpt"):
        raise MaiaError(f"--init {folder}: a {saved['kind']} model cannot start a {kind} model")
    shared.update({k: v for k, v in overrides.items() if k in FREE_FIELDS or k not in old_cfg})
    return shared


@torch.no_grad()
def warm_start(model: torch.nn.Module, folder, vocab: Vocab) -> dict:
    """Copies the weights of the model in ``folder`` into ``model`` (built for ``vocab``). Returns what
    was done: tokens copied and new, positions extended."""
    old, old_vocab, _ = _load(folder)
    old_state, new_state = old.state_dict(), model.state_dict()
    report = {"from": str(folder), "tokens_copied": 0, "tokens_new": [], "positions": None}
    for name, t in new_state.items():
        if name not in old_state:
            raise MaiaError(f"--init {folder}: the trained model has no weight {name}")
        src = old_state[name].to(t.dtype)
        if name in VOCAB_ROWS and (src.shape[0] != t.shape[0] or old_vocab.itos != vocab.itos):
            t.copy_(_remap_rows(src, old_vocab, vocab, report, t.shape[0]))
        elif name == "transformer.wpe.weight" and src.shape[0] != t.shape[0]:
            reps = -(-t.shape[0] // src.shape[0])
            t.copy_(src.repeat(reps, 1)[: t.shape[0]])
            report["positions"] = [src.shape[0], t.shape[0]]
        elif src.shape != t.shape:
            raise MaiaError(f"--init {folder}: weight {name} is {tuple(src.shape)}, the new model needs {tuple(t.shape)}")
        else:
            t.copy_(src)
    return report


@functools.lru_cache(maxsize=1)
def _load(folder):
    """The trained model, loaded once for both init_config and warm_start."""
    return load_model(folder)


def _remap_rows(src: torch.Tensor, old: Vocab, new: Vocab, report: dict, rows: int) -> torch.Tensor:
    """Rows of a (V_old, C) embedding or output matrix re-laid for the new vocabulary (V_new, C)."""
    out = src.mean(0, keepdim=True).repeat(rows, *([1] * (src.dim() - 1)))
    unknown = old.stoi[composer_token("unknown")]
    for i, tok in enumerate(new.itos):
        j = old.stoi.get(tok)
        if j is not None:
            out[i] = src[j]
        else:
            out[i] = src[unknown] if new.is_composer(i) else out[i]
            if tok not in report["tokens_new"]:
                report["tokens_new"].append(tok)
    report["tokens_copied"] = sum(tok in old.stoi for tok in new.itos)
    return out

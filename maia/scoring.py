"""How surprised is a model by a piece: bits per token, per note, per token kind and per note.

    r = score_piece(model, vocab, read("piece.mid", vocab.config), composer="unknown", window=1024)
    r["bits_per_note"], r["surprise"][:3]   # [{"onset": beats, "pitch": 60, "bits": 4.2}, ...]

Every token after the composer token is scored once, with sliding windows of the model's context (half a
window apart, so each token has at least half a window of context). Bits per note (total bits / notes) is
comparable across tokenisations; bits per token is not. A note's surprise is the bits of its note-on and
of the tokens that led to it since the previous note-on (the waits before it, a dynamics change, the
note-offs in between), so the notes' surprises add up to the piece's bits.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from maia.encoding import Piece, encode_ids, expand_merges
from maia.vocab import Vocab

LN2 = math.log(2)
KINDS = ("note-on", "note-off", "wait", "dynamics", "other")


def window_starts(length: int, seq_len: int, stride: int) -> list[int]:
    """Starts of overlapping windows over a body of ``length`` tokens; the last one ends at the end."""
    last = max(length - seq_len, 0)
    n = 1 + -(-last // stride)
    return [min(i * stride, last) for i in range(n)]


@torch.inference_mode()
def sliding_window_bits(model, pieces: list[np.ndarray], window: int, stride: int | None = None,
                        batch_size: int = 16, device="cpu", pad_id: int = 0, progress: bool = False) -> np.ndarray:
    """Bits (-log2 P) of every id after the first of each piece, (sum of len(p) - 1,), piece after piece.

    A piece is ``p[0]`` (its composer token) + body. Window j covers body[s_j : s_j + window] as targets,
    with input ``p[0]`` + body[s_j : s_j + window - 1] (the training layout); of its targets it keeps
    those not scored by an earlier window."""
    from tqdm import tqdm

    stride = stride or max(1, window // 2)
    jobs = []  # (piece, body start s, first kept target (relative to s), output position, targets kept)
    offset = 0
    for i, p in enumerate(pieces):
        done = 0  # body positions < done are scored
        for s in window_starts(len(p) - 1, window, stride):
            end = min(s + window, len(p) - 1)
            if end > done:
                jobs.append((i, s, max(done, s) - s, offset + max(done, s), end - max(done, s)))
                done = end
        offset += max(len(p) - 1, 0)
    bits = np.full(offset, np.nan)
    model.eval()
    for b in tqdm(range(0, len(jobs), batch_size), desc="scoring", leave=False, disable=not progress):
        batch = jobs[b : b + batch_size]
        x = np.full((len(batch), window), pad_id, np.int64)
        y = np.full((len(batch), window), pad_id, np.int64)
        for r, (i, s, _, _, _) in enumerate(batch):
            p = pieces[i]
            inp = np.concatenate([p[:1], p[1 + s : s + window]])  # composer + body[s : s + window - 1]
            tgt = p[1 + s : 1 + s + window]  # body[s : s + window]
            x[r, : len(inp)], y[r, : len(tgt)] = inp, tgt
        logits = model(torch.from_numpy(x).to(device)).float()  # (B, window, V)
        logp = torch.log_softmax(logits, dim=-1).gather(-1, torch.from_numpy(y).to(device)[..., None])[..., 0]
        logp = logp.cpu().numpy() / -LN2  # (B, window) bits
        for r, (_, _, keep, out, n) in enumerate(batch):
            bits[out : out + n] = logp[r, keep : keep + n]
    assert not np.isnan(bits).any(), "a target was never scored"
    return bits


def model_window(model, cfg: dict) -> int:
    """Tokens per scoring window: the model's context, else its training seq_len (the LSTM's truncated
    backprop length, all the context it ever learnt to use)."""
    if getattr(model, "max_context", None):
        return int(model.max_context)
    return int(cfg.get("data", {}).get("seq_len") or model.config.block_size)


def remap_ids(ids, src: Vocab, dst: Vocab, composer: str | None = None) -> np.ndarray:
    """Ids of ``src`` (base or merged) -> ids of ``dst``, by token: a composer ``dst`` lacks (or, given,
    ``composer`` instead of the piece's) becomes its composer token; ``dst``'s merges are applied."""
    base = np.asarray(expand_merges(list(ids), src), np.int64)
    if src.itos[: src.base_size] != dst.itos[: dst.base_size]:
        table = np.array([dst.stoi.get(t, -1) for t in src.itos[: src.base_size]], np.int64)
        for i in range(src.composer_offset, src.fim_offset):
            if table[i] < 0:
                table[i] = dst.composer_id(None)
        if (table[base] < 0).any():
            raise ValueError("the pieces use tokens the model's vocabulary lacks (another grid or pitch range?)")
        base = table[base]
    if composer is not None:
        base = np.where([dst.is_composer(int(i)) for i in base], dst.composer_id(composer), base)
    if dst.merges:
        from maia.merges import apply_merges

        return apply_merges(base, dst)
    return base


def token_kinds(ids, vocab: Vocab) -> np.ndarray:
    """Kind index (into KINDS) of each id; a merge token counts as the kind of its last base token."""
    c = vocab.config
    out = np.empty(len(ids), np.int64)
    for k, i in enumerate(ids):
        t = vocab.expand_id(int(i))[-1]
        if vocab.on_offset + c.pitch_lo <= t <= vocab.on_offset + c.pitch_hi:
            out[k] = 0
        elif vocab.off_offset + c.pitch_lo <= t <= vocab.off_offset + c.pitch_hi:
            out[k] = 1
        elif vocab.wait_offset < t <= vocab.wait_offset + c.max_wait:
            out[k] = 2
        elif vocab.velocity_offset <= t < vocab.velocity_offset + c.n_velocity_bins:
            out[k] = 3
        else:
            out[k] = 4
    return out


def bits_by_kind(bits: np.ndarray, targets, vocab: Vocab, notes: int) -> dict[str, float]:
    """Bits per note paid for each token kind (they add up to the bits per note)."""
    kinds = token_kinds(targets, vocab)
    return {name: float(bits[kinds == k].sum() / max(notes, 1)) for k, name in enumerate(KINDS)}


def note_surprise(ids, bits: np.ndarray, vocab: Vocab) -> list[dict]:
    """Per note-on, in order: its onset (quarter notes), pitch and bits (see the module docstring). ``ids``
    are the scored targets (the piece without its composer token), ``bits`` theirs."""
    c = vocab.config
    w0, on_lo, on_hi = vocab.wait_offset, vocab.on_offset + c.pitch_lo, vocab.on_offset + c.pitch_hi
    out: list[dict] = []
    t, pending = 0, 0.0
    for i, b in zip(ids, bits, strict=True):
        pending += float(b)
        notes_here = []
        for base in vocab.expand_id(int(i)):
            if w0 < base <= w0 + c.max_wait:
                t += base - w0
            elif on_lo <= base <= on_hi:
                notes_here.append((t, base - vocab.on_offset))
        for k, (onset, pitch) in enumerate(notes_here):  # a merge holding two note-ons splits its bits
            share = pending / (len(notes_here) - k)
            out.append({"onset": round(onset / c.steps_per_quarter, 4), "pitch": int(pitch), "bits": round(share, 4)})
            pending -= share
    if out and pending:
        out[-1]["bits"] = round(out[-1]["bits"] + pending, 4)  # note-offs and <end> after the last note
    return out


def score_piece(model, vocab: Vocab, piece: Piece, composer: str | None = None, window: int | None = None,
                device="cpu", batch_size: int = 8) -> dict:
    """Bits of ``piece`` under ``model`` (see the module docstring): notes, tokens, bits, bits_per_note,
    bits_per_token, by_kind and surprise."""
    ids = encode_ids(piece, vocab, composer)
    if vocab.merges:
        from maia.merges import apply_merges

        ids = apply_merges(ids, vocab)
    window = window or getattr(model, "max_context", None) or 512
    bits = sliding_window_bits(model, [np.asarray(ids, np.int64)], window, max(1, window // 2), batch_size, device,
                               vocab.pad_id)
    notes = len(piece)
    total = float(bits.sum())
    return {"notes": notes, "tokens": len(bits), "bits": round(total, 3),
            "bits_per_note": total / max(notes, 1), "bits_per_token": total / max(len(bits), 1),
            "by_kind": bits_by_kind(bits, ids[1:], vocab, notes), "surprise": note_surprise(ids[1:], bits, vocab)}

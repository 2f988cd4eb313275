"""A GPT with factorized sparse attention (Child et al. 2019, "Generating Long Sequences with Sparse
Transformers"), for long contexts at O(n * sqrt(n)) attention cost instead of O(n^2).

The model is gpt.py's (token + learned position embeddings, pre-LN blocks, GELU MLP, tied lm head); only
the attention differs. With stride / block length L (the paper's l, ~ sqrt(n)), query i attends to the
causal keys j <= i in A1 u A2, the paper's two factorized patterns:

    strided:  A1 = {j : i - j < L}                (the previous L positions, i itself included)
              A2 = {j : (i - j) mod L == 0}       (every L-th position back: a "column" of the L x n/L grid)
    fixed:    A1 = {j : floor(j / L) == floor(i / L)}        (the query's own block)
              A2 = {j : j mod L in {L-c, ..., L-1}}          (the last c "summary" positions of each block)

Every head attends to the union A1 u A2 (the paper's "merged head", sec. 4.3) rather than half the heads
to A1 and half to A2: one pattern for all heads keeps a single mask, a single kernel call and lets any
query reach any earlier key in two layers through the summary/column positions.

Four implementations of the same function (`attn_impl`), tested against each other:
    dense   SDPA with the explicit (n, n) boolean mask: O(n^2), the reference.
    blocks  plain torch ops on only the active blocks: O(n * (L + n/L)); CPU training path, any device.
    flex    torch.nn.attention.flex_attention with a BlockMask, torch.compile'd: the CUDA path.
    auto    flex on CUDA, blocks elsewhere.
No dropout is applied to attention weights (flex_attention has none and all four must agree); dropout
acts on the embeddings and the residual branches.

The model is gpt.GPT with SparseCausalSelfAttention, whose ``attend`` is the only override: embeddings,
blocks, MLP, KV cache, the shared model interface and the optimizer groups are gpt.py's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from maia.models.gpt import GPT, CausalSelfAttention, GPTConfig

PATTERNS = ("strided", "fixed")
ATTN_IMPLS = ("auto", "flex", "blocks", "dense")


@dataclass
class SparseGPTConfig(GPTConfig):
    """GPTConfig (vocab_size, n_layer, n_head, n_embd, d_ff, dropout on embeddings and residual
    branches, bias) with a long default context and the attention pattern; no attention-weight dropout."""

    block_size: int = 4096  # context length in tokens: ~3 min of dense piano music in notewise tokens
    pattern: str = "strided"  # "strided" or "fixed", see the module docstring
    block: int = 64  # L: stride (strided) or block length (fixed); ~sqrt(block_size) minimises the cost
    summary: int = 4  # c: summary positions per block, "fixed" only (paper: c/L ~ 1/16 .. 1/8)
    attn_impl: str = "auto"  # "auto" | "flex" | "blocks" | "dense": same function, different kernels

    def __post_init__(self):
        super().__post_init__()
        if self.block < 1:
            raise ValueError(f"invalid SparseGPT config: {self}")
        if self.attn_dropout:
            raise ValueError("the sparse attention has no attention-weight dropout (attn_dropout must be 0)")
        if self.pattern not in PATTERNS:
            raise ValueError(f"pattern {self.pattern!r} is not one of {PATTERNS}")
        if self.attn_impl not in ATTN_IMPLS:
            raise ValueError(f"attn_impl {self.attn_impl!r} is not one of {ATTN_IMPLS}")
        if not 1 <= self.summary <= self.block:
            raise ValueError(f"summary ({self.summary}) must be in 1 .. block ({self.block})")


# ---- the pattern, as a predicate and as a key list ----------------------------------------------------


def pattern_mask(q_pos: torch.Tensor, k_pos: torch.Tensor, pattern: str, block: int, summary: int) -> torch.Tensor:
    """True where query position q_pos may attend key position k_pos (LongTensors, broadcast together).
    The single definition of the pattern: the dense reference and the cached decoding path use it."""
    causal = k_pos <= q_pos
    if pattern == "strided":
        d = q_pos - k_pos
        return causal & ((d < block) | (d % block == 0))
    return causal & ((q_pos // block == k_pos // block) | (k_pos % block >= block - summary))


def pattern_keys(i: int, pattern: str, block: int, summary: int, device=None) -> torch.Tensor:
    """The key positions query position i attends to, each once: (<= L + i/L * max(c, 1),) LongTensor.
    Equal, as a set, to pattern_mask(i, arange(i + 1)).nonzero(); O(sqrt(n)) instead of O(n)."""
    L = block
    if pattern == "strided":
        local = torch.arange(max(0, i - L + 1), i + 1, device=device)  # i - j < L
        column = torch.arange(i % L, max(i % L, i - L + 1), L, device=device)  # i - j = ..., 2L, L (0 is in local)
        return torch.cat([column, local])
    start = (i // L) * L  # first position of the query's block
    local = torch.arange(start, i + 1, device=device)
    offsets = torch.arange(L - summary, L, device=device)  # (c,) summary offsets inside a block
    summaries = (torch.arange(i // L, device=device)[:, None] * L + offsets).flatten()  # earlier blocks
    return torch.cat([summaries, local])


# ---- three kernels for one function: dense reference, active blocks, flex_attention ------------------


def dense_attention(q, k, v, pattern: str, block: int, summary: int) -> torch.Tensor:
    """Reference: SDPA under the explicit (n, n) boolean pattern mask. q, k, v: (B, nh, n, hd)."""
    pos = torch.arange(q.shape[-2], device=q.device)
    mask = pattern_mask(pos[:, None], pos[None, :], pattern, block, summary)  # (n, n)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def blocks_attention(q, k, v, pattern: str, block: int, summary: int) -> torch.Tensor:
    """Exact attention under the pattern computing only the active blocks. q, k, v: (B, nh, n, hd).

    The sequence is padded to N = m * L and seen as m blocks of L. Each query scores a few disjoint key
    sets (local blocks, far keys) that together are exactly its pattern, and they share ONE softmax: a
    common row max, exp, and a common normaliser applied after the value matmuls (as flash attention
    does), which avoids concatenating and re-slicing the score tensors.
      strided: local = current block (causal) + previous block (masked to i - j < L);
               far   = the same in-block offset r in every earlier block: with queries and keys laid
                       out as (r, block) that is a causal (m, m) attention per offset r, a batched matmul.
      fixed:   local = the current block (causal);
               far   = the c summary positions of every earlier block (m * c keys, shared by the block).
    Cost per query: 2L + m (strided) or L + m c (fixed) keys, i.e. O(n sqrt n) overall for L ~ sqrt n.
    Padded keys sit after every real query, so causality already hides them; padded query rows are cut.
    """
    B, H, n, hd = q.shape
    L = block
    m = -(-n // L)  # number of blocks, the last one padded
    N = m * L
    if n != N:
        q, k, v = (F.pad(t, (0, 0, 0, N - n)) for t in (q, k, v))  # (B, nh, N, hd)
    q = q * hd**-0.5
    qb, kb, vb = (t.view(B, H, m, L, hd) for t in (q, k, v))  # (B, nh, m, L, hd): block b, offset r
    r = torch.arange(L, device=q.device)
    b = torch.arange(m, device=q.device)
    neg = float("-inf")

    # current block, causal: every row keeps its diagonal, so every row max below is finite. (In-place
    # masked_fill_ / exp_ on fresh temporaries: autograd allows it here and it lowers the peak memory.)
    s_cur = (qb @ kb.transpose(-1, -2)).masked_fill_(r[None, :] > r[:, None], neg)  # (B, nh, m, L, L)
    if pattern == "strided":
        # previous block: key w of block b-1 is i - j = L + r - w back, inside the band iff w > r
        s_prev = qb[:, :, 1:] @ kb[:, :, :-1].transpose(-1, -2)  # (B, nh, m-1, L, L)
        s_prev.masked_fill_(r[None, :] <= r[:, None], neg)
        # far: i - j = L, 2L, ...: same offset r, earlier blocks b' < b. Contiguous copies, because CPU
        # bmm falls back to a slow per-matrix loop on some strided operands.
        qt, kt, vt = (t.transpose(2, 3).contiguous() for t in (qb, kb, vb))  # (B, nh, L, m, hd): [r, b]
        s_far = (qt @ kt.transpose(-1, -2)).masked_fill_(b[None, :] >= b[:, None], neg)  # (B, nh, L, m, m)
        with torch.no_grad():  # the shift cancels in the softmax: no gradient needed through it
            mx = s_cur.amax(-1, keepdim=True)  # (B, nh, m, L, 1)
            mx[:, :, 1:] = torch.maximum(mx[:, :, 1:], s_prev.amax(-1, keepdim=True))
            mx = torch.maximum(mx, s_far.amax(-1, keepdim=True).transpose(2, 3))
        e_cur = (s_cur - mx).exp_()  # (B, nh, m, L, L)
        e_prev = (s_prev - mx[:, :, 1:]).exp_()  # (B, nh, m-1, L, L)
        e_far = (s_far - mx.transpose(2, 3)).exp_()  # (B, nh, L, m, m); exp(-inf) = 0 where masked
        den = e_cur.sum(-1, keepdim=True) + e_far.sum(-1, keepdim=True).transpose(2, 3)  # (B, nh, m, L, 1)
        y = e_cur @ vb + (e_far @ vt).transpose(2, 3)  # (B, nh, m, L, hd)
        y_prev = e_prev @ vb[:, :, :-1]  # (B, nh, m-1, L, hd): block 0 has no previous block
        y = torch.cat([y[:, :, :1], y[:, :, 1:] + y_prev], dim=2)
        den = torch.cat([den[:, :, :1], den[:, :, 1:] + e_prev.sum(-1, keepdim=True)], dim=2)
    else:
        c = summary
        ks = kb[:, :, :, L - c :].reshape(B, H, m * c, hd)  # (B, nh, m c, hd): every block's summaries
        vs = vb[:, :, :, L - c :].reshape(B, H, m * c, hd)
        s_far = (q @ ks.transpose(-1, -2)).view(B, H, m, L, m * c)  # (B, nh, m, L, m c)
        far_ok = b.repeat_interleave(c)[None, :] < b[:, None]  # (m, m c): earlier blocks only (own is local)
        s_far.masked_fill_(~far_ok[:, None, :], neg)
        with torch.no_grad():
            mx = torch.maximum(s_cur.amax(-1, keepdim=True), s_far.amax(-1, keepdim=True))  # (B, nh, m, L, 1)
        e_cur = (s_cur - mx).exp_()  # (B, nh, m, L, L)
        e_far = (s_far - mx).exp_()  # (B, nh, m, L, m c)
        den = e_cur.sum(-1, keepdim=True) + e_far.sum(-1, keepdim=True)  # (B, nh, m, L, 1)
        y = e_cur @ vb + (e_far.view(B, H, N, m * c) @ vs).view(B, H, m, L, hd)  # (B, nh, m, L, hd)
    y = y / den
    return y.reshape(B, H, N, hd)[:, :, :n]  # (B, nh, n, hd)


_BLOCK_MASKS: dict = {}  # (layout, n, L, c, device) -> BlockMask, built once per sequence length
_compiled_flex = None


def _flex(q, k, v, block_mask, lse: bool = False):
    """flex_attention -> out, or (out, lse) if asked; compiled on CUDA. On CPU flex is forward-only and
    runs eagerly here (an unfused reference that materialises the scores: fine for tests; compiling it
    takes ~20 s per shape and its compiled CPU kernel cannot return the lse)."""
    global _compiled_flex
    from torch.nn.attention.flex_attention import AuxRequest, flex_attention

    fn = flex_attention
    if q.is_cuda:
        if _compiled_flex is None:
            _compiled_flex = torch.compile(flex_attention, dynamic=False)
        fn = _compiled_flex
    if not lse:
        return fn(q, k, v, block_mask=block_mask)
    out, aux = fn(q, k, v, block_mask=block_mask, return_aux=AuxRequest(lse=True))
    return out, aux.lse


def _block_mask(layout: str, mask_mod, q_len: int, kv_len: int, key: tuple, device):
    from torch.nn.attention.flex_attention import create_block_mask

    key = (layout, q_len, kv_len, *key, str(device))
    if key not in _BLOCK_MASKS:
        _BLOCK_MASKS[key] = create_block_mask(mask_mod, None, None, q_len, kv_len, device=device)
    return _BLOCK_MASKS[key]


def flex_sparse_attention(q, k, v, pattern: str, block: int, summary: int) -> torch.Tensor:
    """The pattern through flex_attention. q, k, v: (B, nh, n, hd).

    FlexAttention skips (128 x 128) tiles that its BlockMask marks empty. In natural order every key tile
    holds some column (strided) or summary (fixed) position, so no tile is empty and the cost would be
    O(n^2); the far keys are therefore laid out where they form dense, skippable tiles:
      fixed:   keys = [k ; the m c summary keys], one call: block-diagonal local + a (n, m c) summary band.
      strided: two calls merged through their log-sum-exps (exact softmax over the disjoint union):
               the local band in natural order, and the columns with queries and keys permuted to
               (offset r, block b) order, where the pattern is a causal block diagonal of L (m x m) blocks.
    """
    B, H, n, hd = q.shape
    L, c = block, summary
    if pattern == "fixed":
        mf = n // L  # complete blocks: only they have summaries that a later query can see
        ks = k[:, :, : mf * L].view(B, H, mf, L, hd)[:, :, :, L - c :].reshape(B, H, mf * c, hd)
        vs = v[:, :, : mf * L].view(B, H, mf, L, hd)[:, :, :, L - c :].reshape(B, H, mf * c, hd)

        def fixed_mod(b, h, qi, kv):
            local = (kv < n) & (kv <= qi) & (kv // L == qi // L)
            far = (kv >= n) & ((kv - n) // c < qi // L)  # summary key s belongs to block s // c
            return local | far

        bm = _block_mask("fixed", fixed_mod, n, n + mf * c, (L, c), q.device)
        return _flex(q, torch.cat([k, ks], dim=2), torch.cat([v, vs], dim=2), bm)

    def band_mod(b, h, qi, kv):
        return (kv <= qi) & (qi - kv < L)

    band = _block_mask("band", band_mod, n, n, (L,), q.device)
    y1, lse1 = _flex(q, k, v, band, lse=True)  # (B, nh, n, hd), (B, nh, n)
    m = -(-n // L)
    N = m * L

    def to_cols(t):  # (B, nh, n, hd) -> (B, nh, N, hd) in (r, b) order: position r * m + b
        return F.pad(t, (0, 0, 0, N - n)).view(B, H, m, L, hd).transpose(2, 3).reshape(B, H, N, hd)

    def col_mod(b, h, qi, kv):
        return (qi // m == kv // m) & (kv % m < qi % m)  # same offset r, earlier block

    cols = _block_mask("cols", col_mod, N, N, (L,), q.device)
    y2, lse2 = _flex(to_cols(q), to_cols(k), to_cols(v), cols, lse=True)  # in (r, b) order
    y2 = y2.view(B, H, L, m, hd).transpose(2, 3).reshape(B, H, N, hd)[:, :, :n]  # back to natural order
    lse2 = lse2.view(B, H, L, m).transpose(2, 3).reshape(B, H, N)[:, :, :n]  # -inf where no column key
    lse = torch.logaddexp(lse1, lse2)  # (B, nh, n): log of the union's softmax normaliser
    y = y1.float() * (lse1 - lse).exp()[..., None] + y2.float() * (lse2 - lse).exp()[..., None]
    return y.to(q.dtype)


def sparse_attention(q, k, v, pattern: str, block: int, summary: int, impl: str = "auto") -> torch.Tensor:
    """Causal sparse attention under `pattern`; q, k, v: (B, nh, n, hd) -> (B, nh, n, hd)."""
    if impl == "auto":
        impl = "flex" if q.is_cuda else "blocks"
    fn = {"dense": dense_attention, "blocks": blocks_attention, "flex": flex_sparse_attention}[impl]
    return fn(q, k, v, pattern, block, summary)


# ---- the model: gpt.py's, with sparse attention --------------------------------------------------------


class SparseCausalSelfAttention(CausalSelfAttention):
    """gpt.py's attention with the pattern: only ``attend`` differs."""

    def __init__(self, config: SparseGPTConfig):
        super().__init__(config)
        self.pattern, self.block, self.summary = config.pattern, config.block, config.summary
        self.impl = config.attn_impl

    def attend(self, q, k, v, kv, start: int) -> torch.Tensor:
        if kv is None:
            return sparse_attention(q, k, v, self.pattern, self.block, self.summary, self.impl)
        k_buf, v_buf = kv
        T = q.shape[2]
        if T == 1:
            # one new token at position `start`: gather its O(sqrt n) keys, no mask needed
            idx = pattern_keys(start, self.pattern, self.block, self.summary, q.device)
            return F.scaled_dot_product_attention(q, k_buf[:, :, idx], v_buf[:, :, idx])
        # a priming chunk: dense attention over the cache under the pattern mask, O(T * start) once per
        # chunk; the per-token path above is the one that runs thousands of times
        q_pos = torch.arange(start, start + T, device=q.device)[:, None]  # (T, 1)
        k_pos = torch.arange(start + T, device=q.device)[None, :]  # (1, start+T)
        mask = pattern_mask(q_pos, k_pos, self.pattern, self.block, self.summary)  # (T, start+T)
        return F.scaled_dot_product_attention(q, k_buf[:, :, : start + T], v_buf[:, :, : start + T], attn_mask=mask)


class SparseGPT(GPT):
    """Decoder-only transformer language model with factorized sparse attention: gpt.GPT with
    SparseCausalSelfAttention. A single new token costs O(sqrt n) attention in ``step``; a longer chunk
    is attended densely under the mask."""

    attention = SparseCausalSelfAttention

"""Tests for maia/models/sparse_gpt.py: the pattern, the three attention kernels against each other
(forward and gradients), the model's shapes, cached decoding against the full forward, and learning."""

import warnings

import pytest
import torch
import torch.nn.functional as F

from maia.models import build_model
from maia.models.sparse_gpt import (
    PATTERNS,
    SparseGPT,
    SparseGPTConfig,
    blocks_attention,
    dense_attention,
    flex_sparse_attention,
    pattern_keys,
    pattern_mask,
)
from maia.vocab import Vocab

V = len(Vocab())
# (n, block, summary): a multiple of the block, ragged lengths (padding), a single partial block
SHAPES = [(64, 8, 2), (100, 16, 3), (131, 8, 1), (5, 8, 2)]


def qkv(n, dtype=torch.float32, requires_grad=False, B=2, H=3, hd=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, H, n, hd, generator=g, dtype=dtype).requires_grad_(requires_grad) for _ in range(3)]


def tiny(pattern="strided", **overrides) -> SparseGPT:
    torch.manual_seed(0)
    cfg = dict(
        vocab_size=V,
        block_size=64,
        n_layer=2,
        n_head=4,
        n_embd=32,
        d_ff=64,
        pattern=pattern,
        block=8,
        summary=2,
        dropout=0.0,
    )
    return build_model("sparse_gpt", {**cfg, **overrides})


@pytest.mark.parametrize("pattern", PATTERNS)
def test_pattern_definitions(pattern):
    """The mask is the paper's A1 u A2, checked pointwise against the set definitions."""
    n, L, c = 40, 8, 3
    pos = torch.arange(n)
    mask = pattern_mask(pos[:, None], pos[None, :], pattern, L, c)
    for i in range(n):
        for j in range(n):
            if pattern == "strided":
                want = j <= i and (i - j < L or (i - j) % L == 0)
            else:
                want = j <= i and (j // L == i // L or j % L >= L - c)
            assert bool(mask[i, j]) == want, (i, j)


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("L,c", [(8, 1), (8, 3), (16, 16), (1, 1)])
def test_pattern_keys_match_mask(pattern, L, c):
    n = 70
    pos = torch.arange(n)
    mask = pattern_mask(pos[:, None], pos[None, :], pattern, L, c)
    for i in range(n):
        keys = pattern_keys(i, pattern, L, c)
        assert len(keys) == len(set(keys.tolist()))  # each key once
        assert sorted(keys.tolist()) == mask[i].nonzero().flatten().tolist()


def test_pattern_is_sparse():
    """Keys per query stay near 2L + n/L, far below the causal i + 1."""
    n, L = 1024, 32
    for pattern, bound in [("strided", L + n // L), ("fixed", L + n // L * 2)]:
        counts = [len(pattern_keys(i, pattern, L, 2)) for i in range(n)]
        assert max(counts) <= bound, pattern


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("n,L,c", SHAPES)
def test_blocks_match_dense_forward_and_grads(pattern, n, L, c):
    q, k, v = qkv(n, requires_grad=True)
    g = torch.randn(2, 3, n, 8, generator=torch.Generator().manual_seed(1))
    grads = {}
    for name, fn in [("dense", dense_attention), ("blocks", blocks_attention)]:
        y = fn(q, k, v, pattern, L, c)
        (dq, dk, dv) = torch.autograd.grad(y, (q, k, v), g)
        grads[name] = (y, dq, dk, dv)
    for what, a, b in zip(["y", "q", "k", "v"], grads["dense"], grads["blocks"], strict=True):
        torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4, msg=f"{what} differs")


@pytest.mark.parametrize("pattern", PATTERNS)
def test_sparse_differs_from_causal(pattern):
    """The kernels really drop keys: the result is not plain causal attention."""
    q, k, v = qkv(64)
    full = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert (blocks_attention(q, k, v, pattern, 8, 1) - full).abs().max() > 1e-2


def _flex_or_skip(q, k, v, pattern, L, c):
    if not q.is_cuda and q.requires_grad:
        pytest.skip("needs CUDA: FlexAttention has no backward on CPU")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "called without torch.compile": the eager CPU reference
            return flex_sparse_attention(q, k, v, pattern, L, c)
    except (ImportError, NotImplementedError, RuntimeError) as err:
        pytest.skip(f"needs CUDA: flex_attention unavailable here ({type(err).__name__})")


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("n,L,c", SHAPES)
def test_flex_matches_dense_forward(pattern, n, L, c):
    """FlexAttention's forward runs on CPU (eagerly), so its layouts and masks are checked here."""
    q, k, v = qkv(n)
    y = _flex_or_skip(q, k, v, pattern, L, c)
    torch.testing.assert_close(y, dense_attention(q, k, v, pattern, L, c), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_flex_matches_dense_grads(pattern):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA: FlexAttention has no backward on CPU")
    # head dim 16: Triton's flex kernels need at least 16 (the models have 32); 8 fails to compile
    q, k, v = (t.cuda().requires_grad_() for t in qkv(300, hd=16))
    y = _flex_or_skip(q, k, v, pattern, 16, 2)
    g = torch.randn_like(y)
    got = (y, *torch.autograd.grad(y, (q, k, v), g))
    ref_y = dense_attention(q, k, v, pattern, 16, 2)
    want = (ref_y, *torch.autograd.grad(ref_y, (q, k, v), g))
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-3)


def test_blocks_memory_is_subquadratic():
    """Bytes autograd saves for backward grow ~n^1.5 with L = sqrt(n): x8 for 4x n, not x16."""

    def saved_bytes(n, L):
        total = 0

        def pack(t):
            nonlocal total
            total += t.numel() * t.element_size()
            return t

        q, k, v = qkv(n, requires_grad=True, B=1, H=1)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            blocks_attention(q, k, v, "strided", L, 1)
        return total

    ratio = saved_bytes(4096, 64) / saved_bytes(1024, 32)
    assert ratio < 10, ratio  # dense would save 16x


@pytest.mark.parametrize("pattern", PATTERNS)
def test_impls_agree_in_model(pattern):
    idx = torch.randint(0, V, (2, 45))
    logits = {impl: tiny(pattern, attn_impl=impl).eval()(idx) for impl in ("dense", "blocks", "auto")}
    torch.testing.assert_close(logits["blocks"], logits["dense"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(logits["auto"], logits["blocks"])


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("chunks", [[1] * 30, [13] + [1] * 20, [4, 9, 1, 12, 1, 1, 7]])
def test_step_matches_forward(pattern, chunks):
    """Cached decoding, token by token and in priming chunks, across several blocks of 8."""
    model = tiny(pattern).eval()
    idx = torch.randint(0, V, (2, sum(chunks)))
    full = model(idx)
    cache = model.init_cache(2)
    got, t = [], 0
    for size in chunks:
        got.append(model.step(idx[:, t : t + size], cache))
        t += size
    assert cache.length == idx.shape[1]
    torch.testing.assert_close(torch.cat(got, dim=1), full, atol=1e-4, rtol=1e-4)


def test_config_validation():
    with pytest.raises(ValueError, match="pattern"):
        SparseGPTConfig(vocab_size=V, pattern="axial")
    with pytest.raises(ValueError, match="attn_impl"):
        SparseGPTConfig(vocab_size=V, attn_impl="triton")
    with pytest.raises(ValueError, match="summary"):
        SparseGPTConfig(vocab_size=V, block=8, summary=9)


def test_export_ships_the_kernel_choice_as_auto(tmp_path):
    """A run trained with flex on CUDA exports attn_impl "auto", so a CPU loads the active-blocks path
    rather than flex's unfused O(n^2) fallback; the weights come through (fp16) and the outputs agree."""
    from maia.checkpoint import load_model, save_model
    from training.export import export

    model = tiny(attn_impl="flex").eval()
    save_model(tmp_path / "run", model, "sparse_gpt", model.config, Vocab(), {}, dtype=None)
    shipped, _, cfg = load_model(export(tmp_path / "run", tmp_path / "shipped"))
    assert cfg["model"]["attn_impl"] == "auto" and shipped.config.attn_impl == "auto"
    x = torch.randint(0, V, (1, 40))
    with torch.no_grad():
        want = tiny(attn_impl="blocks").eval()(x)
        torch.testing.assert_close(shipped.float()(x), want, atol=2e-2, rtol=2e-2)

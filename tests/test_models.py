"""Tests for maia/models: shapes, the cached step path against the full forward, optimizer groups,
and that each model can actually learn."""

import math

import pytest
import torch
import torch.nn as nn

from maia.models import MODELS, build_model
from maia.vocab import Vocab

V = len(Vocab())
TINY = {
    "gpt": dict(vocab_size=V, block_size=32, n_layer=2, n_head=4, n_embd=32, d_ff=64),
    "lstm": dict(vocab_size=V, emb_dim=4, hidden=32, n_layer=2, block_size=32),
    "sparse_gpt": dict(vocab_size=V, block_size=32, n_layer=2, n_head=4, n_embd=32, d_ff=64, block=4, summary=2),
}


def tiny(kind: str, **overrides) -> nn.Module:
    torch.manual_seed(0)
    return build_model(kind, {**TINY[kind], **overrides})


@pytest.mark.parametrize("kind", TINY)
def test_forward_shape(kind):
    model = tiny(kind)
    idx = torch.randint(0, V, (3, 17))
    logits = model(idx)
    assert logits.shape == (3, 17, V)
    assert logits.dtype == torch.float32


def test_registry_covers_tiny_configs():
    assert set(TINY) <= set(MODELS)


def test_build_model_errors():
    with pytest.raises(ValueError, match="unknown model kind 'transformer'"):
        build_model("transformer", {"vocab_size": V})
    with pytest.raises(ValueError, match=r"unknown keys \['n_layers'\]"):
        build_model("gpt", {"vocab_size": V, "n_layers": 2})
    with pytest.raises(ValueError, match=r"missing keys \['vocab_size'\]"):
        build_model("lstm", {})
    with pytest.raises(ValueError, match="multiple of n_head"):
        build_model("gpt", {"vocab_size": V, "n_embd": 30, "n_head": 4})


@pytest.mark.parametrize("kind", TINY)
@pytest.mark.parametrize("chunks", [[1] * 12, [5] + [1] * 7, [4, 3, 5]])
def test_step_matches_forward(kind, chunks):
    """Feeding the sequence through step() in chunks gives the full forward's logits."""
    model = tiny(kind).eval()
    idx = torch.randint(0, V, (2, sum(chunks)))
    with torch.no_grad():
        full = model(idx)
    cache = model.init_cache(2)
    pieces, t = [], 0
    for n in chunks:
        pieces.append(model.step(idx[:, t : t + n], cache))
        t += n
        assert cache.length == t
    stepped = torch.cat(pieces, dim=1)
    assert stepped.shape == full.shape
    torch.testing.assert_close(stepped, full, atol=1e-5, rtol=1e-5)


def test_gpt_step_past_block_size_raises():
    model = tiny("gpt", block_size=8).eval()
    cache = model.init_cache(1)
    model.step(torch.zeros(1, 6, dtype=torch.long), cache)
    model.step(torch.zeros(1, 2, dtype=torch.long), cache)  # exactly full is fine
    with pytest.raises(ValueError, match="block_size"):
        model.step(torch.zeros(1, 1, dtype=torch.long), cache)
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 9, dtype=torch.long))


def test_max_context():
    assert tiny("gpt").max_context == TINY["gpt"]["block_size"]
    assert tiny("lstm").max_context is None


def test_lstm_steps_past_block_size():
    """The LSTM's block_size is its training window only: sampling may run past it."""
    model = tiny("lstm", block_size=4).eval()
    cache = model.init_cache(1)
    assert model.step(torch.zeros(1, 10, dtype=torch.long), cache).shape == (1, 10, V)
    assert cache.length == 10


def test_gpt_weights_tied():
    model = tiny("gpt")
    assert model.lm_head.weight is model.transformer.wte.weight
    # the tied matrix is counted once
    assert model.num_params() == sum(p.numel() for p in set(model.parameters()))


@pytest.mark.parametrize("kind", TINY)
def test_optimizer_groups(kind):
    model = tiny(kind)
    opt = model.configure_optimizers(weight_decay=0.1, lr=1e-3, betas=(0.9, 0.95), device_type="cpu")
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    decay_ids = {id(p) for p in decay["params"]}
    no_decay_ids = {id(p) for p in no_decay["params"]}
    assert decay_ids.isdisjoint(no_decay_ids)
    assert decay_ids | no_decay_ids == {id(p) for p in model.parameters()}  # every parameter, once
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    norms = {id(p) for m in model.modules() if isinstance(m, nn.LayerNorm) for p in m.parameters()}
    biases = {id(p) for n, p in model.named_parameters() if "bias" in n}  # LSTM: bias_ih_l0, ...
    assert embeddings and (norms or kind == "lstm") and (biases or kind != "lstm")  # the test has teeth
    assert decay_ids.isdisjoint(embeddings | norms | biases)
    assert all(p.dim() >= 2 for p in decay["params"])
    assert len(decay_ids) >= 2  # the matmul weights are there


LEARN = {"gpt": (dict(dropout=0.0), 1e-2), "sparse_gpt": (dict(dropout=0.0), 1e-2),
         "lstm": (dict(dropout=0.0, emb_dim=16), 3e-2)}


@pytest.mark.parametrize("kind", TINY)
def test_tiny_model_learns(kind):
    """50 AdamW steps on a repeating 7-token phrase take the loss from ~ln(V) to well under ln(7),
    the floor of a model that learnt which tokens occur but not their order."""
    overrides, lr = LEARN[kind]
    model = tiny(kind, **overrides)
    torch.manual_seed(1)
    phrase = torch.randperm(V - 3)[:7] + 3  # 7 distinct non-special ids
    data = phrase.repeat(40)  # (280,)
    opt = model.configure_optimizers(weight_decay=0.0, lr=lr, betas=(0.9, 0.95), device_type="cpu")
    losses = []
    for _ in range(50):
        starts = torch.randint(0, len(data) - 33, (8,))
        batch = torch.stack([data[s : s + 33] for s in starts])  # (8, 33)
        logits = model(batch[:, :-1])  # (8, 32, V)
        loss = nn.functional.cross_entropy(logits.reshape(-1, V), batch[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 4.0  # ~ln(V) at init
    assert sum(losses[-5:]) / 5 < 0.5 * math.log(7), losses[::10]


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("sparse", [False, True])
def test_one_token_decode_path_is_bit_identical_to_module_path(sparse, bias):
    """GPT.step's per-token fast path (functional calls, no nn.Module.__call__) gives the same bits as the
    module path (_run) for every position, dense and sparse, with and without biases, batch of 1 and 3."""
    from maia.models.gpt import GPT, GPTConfig
    from maia.models.sparse_gpt import SparseGPT, SparseGPTConfig

    torch.manual_seed(0)
    if sparse:
        model = SparseGPT(SparseGPTConfig(vocab_size=50, block_size=64, n_layer=2, n_head=2, n_embd=32, d_ff=64,
                                          block=8, bias=bias)).eval()
    else:
        model = GPT(GPTConfig(vocab_size=50, block_size=64, n_layer=2, n_head=2, n_embd=32, d_ff=64, bias=bias)).eval()
    if bias:  # nonzero, so that a path that dropped one would differ
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("bias"):
                    p.normal_(0.0, 0.1)
    for B in (1, 3):
        ids = torch.randint(0, 50, (B, 40))
        fast, slow = model.init_cache(B), model.init_cache(B)
        with torch.no_grad():
            model.step(ids[:, :9], fast)  # a priming chunk, then one token at a time
            model.step(ids[:, :9], slow)
            for t in range(9, 40):
                a = model.step(ids[:, t : t + 1], fast)
                b = model._run(ids[:, t : t + 1], slow.length, slow)
                slow.length += 1
                assert torch.equal(a, b), (B, t)
        for i in range(len(fast.k)):
            assert torch.equal(fast.k[i], slow.k[i]) and torch.equal(fast.v[i], slow.v[i])


def as_fp16_checkpoint(model):
    """``model`` with every weight rounded to float16 and back, as a shipped checkpoint loads."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
    return model


@pytest.mark.parametrize("bias", [False, True])
def test_fp16_weights_take_fbgemms_gemm_and_give_the_module_paths_logits(bias):
    """Weights that are exactly float16 (a shipped checkpoint's) go through fbgemm's fp16 GEMM on the one-token
    path: the same products summed in another order, so the logits agree with the module path's (MKL, float32)
    to 1e-5, and the likeliest token is the same; a float32 weight keeps the mm path."""
    from maia.models.gpt import FP16_GEMM_ENGINES, GPT, GPTConfig

    if "fbgemm" not in FP16_GEMM_ENGINES:
        pytest.skip("this torch or CPU has no fbgemm fp16 GEMM")
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, block_size=64, n_layer=2, n_head=2, n_embd=32, d_ff=64, bias=bias)).eval()
    plain = model._decode_weights()
    assert all(packed is None for *_, packed in plain[0][0][2:4] + plain[0][0][5:7])  # float32: the mm path
    as_fp16_checkpoint(model)
    for B in (1, 3):
        ids = torch.randint(0, 50, (B, 40))
        fast, slow = model.init_cache(B), model.init_cache(B)
        with torch.no_grad():
            model.step(ids[:, :9], fast)
            model.step(ids[:, :9], slow)
            for t in range(9, 40):
                a = model.step(ids[:, t : t + 1], fast)
                b = model._run(ids[:, t : t + 1], slow.length, slow)
                slow.length += 1
                torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
                assert torch.equal(a.argmax(-1), b.argmax(-1))
    blocks, _, head = model._decode_kept()
    assert all(lin[2] is not None for block in blocks for lin in (block[2], block[3], block[5], block[6]))
    assert head[2] is not None


@pytest.mark.parametrize("fp16", [False, True])
def test_one_token_path_sees_hooks_and_new_weights_added_after_it_ran(fp16):
    """The fast path resolves its module list and weights once (per model, while no weight changed): a hook put
    on a submodule afterwards still routes steps through the modules, and weights loaded in place afterwards
    (load_state_dict) are the ones the next fast step uses, float16 packings included."""
    from maia.models.gpt import GPT, GPTConfig

    torch.manual_seed(0)
    config = GPTConfig(vocab_size=50, block_size=64, n_layer=2, n_head=2, n_embd=32, d_ff=64)
    model, other = GPT(config).eval(), GPT(config).eval()
    if fp16:
        as_fp16_checkpoint(model), as_fp16_checkpoint(other)
    ids = torch.randint(0, 50, (2, 12))
    cache = model.init_cache(2)
    model.step(ids[:, :10], cache)
    model.step(ids[:, 10:11], cache)  # the fast path ran: its lists are made
    calls = []
    handle = model.transformer.h[1].mlp.register_forward_hook(lambda *args: calls.append(1))
    model.step(ids[:, 11:12], cache)
    handle.remove()
    assert calls == [1]

    a, b = model.init_cache(2), model.init_cache(2)
    with torch.no_grad():
        model.step(ids[:, :10], a)
        model.step(ids[:, :10], b)
        model.step(ids[:, 10:11], a)  # a's weight views are resolved here
        model._run(ids[:, 10:11], b.length, b)
        b.length += 1
        model.load_state_dict(other.state_dict())  # copies into the same parameters
        fast, slow = model.step(ids[:, 11:12], a), model._run(ids[:, 11:12], b.length, b)
    if fp16:
        torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)
    else:
        assert torch.equal(fast, slow)
    assert not torch.equal(fast, model.step(ids[:, 11:12], model.init_cache(2)))  # (the context matters)

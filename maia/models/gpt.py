"""A decoder-only transformer over notewise tokens, in the style of nanoGPT's model.py.

Token + learned position embeddings, `n_layer` pre-LayerNorm blocks (causal self-attention through
`F.scaled_dot_product_attention`, GELU MLP), a final LayerNorm and an lm head tied to the token embedding.

Shared model interface (also implemented by lstm.py and sparse_gpt.py, used by maia.generate):
    forward(idx)        (B, T) ids -> (B, T, V) float32 logits, the training path
    init_cache(B)       a fresh KVCache for incremental decoding
    step(idx, cache)    (B, T_new) new ids -> (B, T_new, V) logits, appending to the cache in place
    max_context         block_size: the generator slides its window by resetting the cache
    num_params()        number of distinct parameters

Over 300 lines because the model keeps two paths to the same logits: the module path (training, priming a
prompt, hooks) and the one-token decoding path (``_decode_one``, with its float16 GEMM packing), which is most of
a sampling step's time and is tested against the module path; split apart, each would have to reach into the
other's weights.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class GPTConfig:
    vocab_size: int  # len(Vocab()): no default, it always comes from the vocabulary
    block_size: int = 512  # context length in tokens: ~25 s of dense piano music in notewise tokens
    n_layer: int = 6  # transformer blocks
    n_head: int = 8  # attention heads; head_dim = n_embd // n_head = 32
    n_embd: int = 256  # model width; ~4.9M parameters at the defaults, trainable on one small GPU
    d_ff: int = 1024  # MLP hidden width, the usual 4 * n_embd
    dropout: float = 0.1  # on embeddings and residual branches; off in eval()
    attn_dropout: float = 0.0  # on attention weights; > 0 forces SDPA's unfused math path (~3x slower on CPU)
    bias: bool = False  # biases in Linear and LayerNorm: without is slightly faster and as good

    def __post_init__(self):
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")
        if min(self.vocab_size, self.block_size, self.n_layer, self.n_head, self.d_ff) < 1:
            raise ValueError(f"invalid GPT config: {self}")


class KVCache:
    """Preallocated keys and values of every layer for incremental decoding.

    `kv[i]` is layer i's (2, B, n_head, block_size, head_dim) buffer, keys then values, so that a decoding
    step writes both with one copy; `k[i]` = kv[i][0] and `v[i]` = kv[i][1] are its (B, n_head, block_size,
    head_dim) views. Positions `0 .. length-1` are filled.
    """

    def __init__(self, config: GPTConfig, batch_size: int, device: torch.device, dtype: torch.dtype):
        shape = (2, batch_size, config.n_head, config.block_size, config.n_embd // config.n_head)
        self.kv = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        self.k = [kv[0] for kv in self.kv]
        self.v = [kv[1] for kv in self.kv]
        self.batch_size = batch_size
        self.length = 0  # tokens consumed so far


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention: the q, k, v projection, ``attend`` (dense causal attention here; the
    hook that sparse_gpt.py overrides) and the output projection."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head, self.n_embd, self.dropout = config.n_head, config.n_embd, config.attn_dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v at once
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, kv: tuple[torch.Tensor, torch.Tensor] | None = None, start: int = 0):
        """x: (B, T, C). Without `kv`, causal attention over x. With `kv` = (k_buf, v_buf) from a
        KVCache, x holds positions start .. start+T-1: their keys/values are written into the buffers and
        the queries attend to the cached positions up to their own."""
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hd)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hd)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hd)
        if kv is not None:
            k_buf, v_buf = kv
            k_buf[:, :, start : start + T] = k
            v_buf[:, :, start : start + T] = v
        y = self.attend(q, k, v, kv, start)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C): heads side by side again
        return self.resid_dropout(self.c_proj(y))

    def attend(self, q, k, v, kv, start: int) -> torch.Tensor:
        """(B, nh, T, hd) queries at positions start .. start+T-1 -> (B, nh, T, hd). Without a cache
        (kv None, start 0) k and v are the queries' own; with one, the buffers hold every position up to
        start+T-1."""
        T = q.shape[2]
        dropout_p = self.dropout if self.training else 0.0
        if kv is None:
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
        k, v = kv[0][:, :, : start + T], kv[1][:, :, : start + T]  # (B, nh, start+T, hd)
        # is_causal aligns the mask top-left, which is wrong when start > 0: query i sits at position
        # start+i and may see keys 0..start+i. A single new token sees everything, so needs no mask.
        mask = None
        if T > 1:
            mask = torch.ones(T, start + T, dtype=torch.bool, device=q.device).tril(diagonal=start)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, config.d_ff, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(config.d_ff, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))  # (B, T, C) -> (B, T, d_ff) -> (B, T, C)


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, config: GPTConfig, attention: type[CausalSelfAttention] = CausalSelfAttention):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = attention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, kv=None, start: int = 0) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), kv, start)
        return x + self.mlp(self.ln_2(x))


def _linear(x: torch.Tensor, weight_t: torch.Tensor, bias: torch.Tensor | None,
            packed: torch.Tensor | None) -> torch.Tensor:
    """F.linear on 2-D rows (B, in) given the transposed weight (in, out), without its dispatch layers: the
    same mm (addmm with a bias) that it runs; or, with ``packed`` (``_pack_fp16``), fbgemm's GEMM on the same
    weights stored as float16 (``bias`` is then a tensor, zeros for none)."""
    if packed is not None:
        return torch.fbgemm_linear_fp16_weight(x, packed, bias)
    return torch.mm(x, weight_t) if bias is None else torch.addmm(bias, x, weight_t)


FP16_GEMM_ENGINES = set(torch.backends.quantized.supported_engines) if hasattr(torch, "fbgemm_pack_gemm_matrix_fp16") \
    else set()  # fbgemm where this build and CPU have it (x86 with AVX2), else none


def _pack_fp16(weight: torch.Tensor) -> torch.Tensor | None:
    """fbgemm's packing of a float32 (out, in) CPU weight whose values are all exactly float16 (those of a
    shipped checkpoint, stored in float16, are): its GEMM then reads half the bytes and runs 2-3x faster than
    MKL's on one row or four (BENCHMARKS.md), with the same products summed in another order (logits within
    ~1e-5). None for any other weight, or where this torch has no fbgemm (then the mm path runs)."""
    if (weight.device.type != "cpu" or weight.dtype != torch.float32 or "fbgemm" not in FP16_GEMM_ENGINES
            or not torch.equal(weight, weight.half().float())):
        return None
    with warnings.catch_warnings():  # torch 2.13 calls the fp16 GEMM deprecated, still ships it (pinned here)
        warnings.filterwarnings("ignore", message=r"fbgemm_\w+ is deprecated")
        packed = torch.fbgemm_pack_gemm_matrix_fp16(weight)
        torch.fbgemm_linear_fp16_weight(weight.new_zeros(1, weight.shape[1]), packed, weight.new_zeros(weight.shape[0]))
    return packed


def _layer_norm(x: torch.Tensor, ln: tuple) -> torch.Tensor:
    """F.layer_norm from (normalized_shape, weight, bias, eps), calling its kernel (native_layer_norm, which
    also returns the mean and rstd that training keeps) with one dispatch fewer."""
    return torch.native_layer_norm(x, *ln)[0]


class GPT(nn.Module):
    """Decoder-only transformer language model over token ids. ``attention`` is the one hook a variant
    changes (sparse_gpt.SparseGPT)."""

    attention: type[CausalSelfAttention] = CausalSelfAttention

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),  # token embedding
                wpe=nn.Embedding(config.block_size, config.n_embd),  # learned position embedding
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList([Block(config, self.attention) for _ in range(config.n_layer)]),
                ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # Weight tying (Press & Wolf 2017): one matrix embeds tokens and scores them.
        self.transformer.wte.weight = self.lm_head.weight

        self.apply(self._init_weights)
        # GPT-2: scale the residual projections by 1/sqrt(2 * n_layer) so that the residual stream's
        # variance does not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    @property
    def max_context(self) -> int:
        """Most tokens the model can attend to; the generator crops/slides its window to this."""
        return self.config.block_size

    def num_params(self) -> int:
        """Number of parameters, the tied embedding / lm head counted once."""
        return sum(p.numel() for p in self.parameters())

    def _run(self, idx: torch.Tensor, start: int, cache: KVCache | None) -> torch.Tensor:
        """idx (B, T) at positions start .. start+T-1 -> (B, T, V) float32 logits."""
        T = idx.shape[1]
        pos = torch.arange(start, start + T, dtype=torch.long, device=idx.device)  # (T,)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))  # (B, T, C)
        for i, block in enumerate(self.transformer.h):
            x = block(x, None if cache is None else (cache.k[i], cache.v[i]), start)
        x = self.transformer.ln_f(x)
        return self.lm_head(x).float()  # (B, T, V)

    def _decode_weights(self) -> tuple:
        """What the one-token path reads, resolved once (``_decode_kept``) instead of ~160 nn.Module attribute
        look-ups per token: per block (attn, ln_1, c_attn, c_proj, ln_2, c_fc, mlp c_proj), then ln_f and the lm head;
        a LayerNorm as (normalized_shape, weight, bias, eps), a Linear as (weight.t(), bias, fp16 packing or
        None: ``_linear``)."""
        def ln(m):
            return m.normalized_shape, m.weight, m.bias, m.eps

        def lin(m):
            packed = _pack_fp16(m.weight)
            if packed is None:
                return m.weight.t(), m.bias, None
            return m.weight.t(), m.weight.new_zeros(m.out_features) if m.bias is None else m.bias, packed

        blocks = tuple((b.attn, ln(b.ln_1), lin(b.attn.c_attn), lin(b.attn.c_proj), ln(b.ln_2), lin(b.mlp.c_fc),
                        lin(b.mlp.c_proj)) for b in self.transformer.h)
        return blocks, ln(self.transformer.ln_f), lin(self.lm_head)

    def _decode_kept(self) -> tuple:
        """``_decode_weights``, made again only when a weight changed in place (an optimiser step, load_state_dict:
        each bumps the tensor's ``_version``, so their sum moves) or moved (``.to``, ``.half``: its storage):
        packing takes ~30 ms, the check ~5 us a step.
        Like ``_hooked``, it takes the set of parameters as fixed after the first step."""
        params = self.__dict__.get("_all_params")
        if params is None:
            params = self.__dict__["_all_params"] = tuple(self.parameters())
        version = sum(p._version for p in params), sum(p.data_ptr() for p in params)  # data_ptr: .to(), .half()
        kept = self.__dict__.get("_decode_state")
        if kept is None or kept[0] != version:
            kept = self.__dict__["_decode_state"] = (version, self._decode_weights())
        return kept[1]

    def _decode_one(self, idx: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """The per-token decoding path: idx (B, 1) at position cache.length -> (B, 1, V) float32 logits.

        The same arithmetic as ``_run`` in eval mode (so the same bits with float32 weights, and within 1e-5
        with a checkpoint's float16 ones, which take fbgemm's fp16 GEMM: tests/test_models.py checks both),
        with as few operators as it takes: at one token per step the model's arithmetic is a small part of the
        time, and the rest is per-operator overhead (nn.Module.__call__ on ~60 modules, F.linear's reshapes and
        transposes, q/k/v head views, two cache writes per layer). So rows stay 2-D (B, C) throughout, a
        Linear is one GEMM on weights resolved once (``_linear``: addmm with a bias, what F.linear runs, or
        fbgemm's on float16 weights, 2-3x faster), q is a view of the fused qkv product, keys and values go
        into the cache with one copy, and attention reads a view of the preallocated cache. Dense attention
        calls SDPA directly; a variant's ``attend`` (sparse_gpt.py) is still the hook."""
        blocks, ln_f, head = self._decode_kept()
        start, L = cache.length, cache.length + 1
        B, C = idx.shape[0], self.config.n_embd
        nh = self.config.n_head
        hd = C // nh
        t = self.transformer
        x = torch.embedding(t.wte.weight, idx.view(B)) + t.wpe.weight[start]  # (B, C), a new tensor that the
        # residual adds below update in place (the same sums as x + ...); dropout is off in eval
        dense = type(blocks[0][0]).attend is CausalSelfAttention.attend
        for i, (attn, ln_1, c_attn, c_proj, ln_2, c_fc, mlp_proj) in enumerate(blocks):
            qkv = _linear(_layer_norm(x, ln_1), *c_attn)  # (B, 3C): q, k, v side by side
            q = qkv[:, :C].view(B, nh, 1, hd)  # (B, nh, 1, hd)
            kv = cache.kv[i]  # (2, B, nh, block, hd)
            kv[:, :, :, start].copy_(qkv.view(B, 3, nh, hd)[:, 1:].transpose(0, 1))  # this position's k and v
            if dense:  # one new token sees every cached position: no mask
                k, v = kv[:, :, :, :L].unbind(0)  # (B, nh, L, hd) each
                y = F.scaled_dot_product_attention(q, k, v)
            else:
                y = attn.attend(q, kv[0, :, :, start:L], kv[1, :, :, start:L], (cache.k[i], cache.v[i]), start)
            x += _linear(y.reshape(B, C), *c_proj)  # (B, nh, 1, hd) -> (B, C): heads side by side
            x += _linear(F.gelu(_linear(_layer_norm(x, ln_2), *c_fc)), *mlp_proj)  # (B, C) -> (B, d_ff) -> (B, C)
        logits = _linear(_layer_norm(x, ln_f), *head)  # (B, V)
        return (logits if logits.dtype == torch.float32 else logits.float()).unsqueeze(1)  # (B, 1, V)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Training path: idx (B, T) with T <= block_size -> logits (B, T, V), float32."""
        if idx.shape[1] > self.config.block_size:
            raise ValueError(f"sequence of {idx.shape[1]} tokens exceeds block_size {self.config.block_size}")
        return self._run(idx, 0, None)

    def _hooked(self) -> bool:
        """True if any submodule carries a forward hook (a profiler, a probe): then ``step`` takes the
        module path, which runs them. The list of submodules is made once (walking the tree every token
        cost ~7% of a step); the fast path reads those same modules' weights, so it assumes them fixed."""
        mods = self.__dict__.get("_all_modules")
        if mods is None:
            mods = self.__dict__["_all_modules"] = tuple(self.modules())
        return any(m._forward_hooks or m._forward_pre_hooks for m in mods)

    def init_cache(self, batch_size: int) -> KVCache:
        """A fresh, empty KV cache on the model's device and dtype."""
        w = self.transformer.wte.weight
        return KVCache(self.config, batch_size, w.device, w.dtype)

    def step(self, idx: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Inference path: feed idx (B, T_new) at positions cache.length .. cache.length+T_new-1,
        append their keys/values to `cache` in place and return their logits (B, T_new, V), float32.

        Raises ValueError if the cache would grow past block_size: the caller then resets the cache
        (init_cache) and re-primes it with the last tokens of its window."""
        if torch.is_grad_enabled():  # (no decorator: maia.generate calls this under inference_mode already)
            with torch.no_grad():
                return self.step(idx, cache)
        T = idx.shape[1]
        if idx.shape[0] != cache.batch_size:
            raise ValueError(f"batch of {idx.shape[0]} does not match the cache's batch of {cache.batch_size}")
        if cache.length + T > self.config.block_size:
            raise ValueError(f"cache holds {cache.length} tokens, {T} more exceed block_size {self.config.block_size}")
        if T == 1 and not self.training and not self._hooked():
            logits = self._decode_one(idx, cache)  # the hot path: one token per row per step
        else:
            logits = self._run(idx, cache.length, cache)
        cache.length += T
        return logits

    def configure_optimizers(
        self, weight_decay: float, lr: float, betas: tuple[float, float], device_type: str
    ) -> torch.optim.AdamW:
        """AdamW with weight decay on the matmul weights only: not on biases, LayerNorms or the
        (tied) token and position embeddings."""
        embeddings = {id(m.weight) for m in self.modules() if isinstance(m, nn.Embedding)}
        params = list(self.parameters())  # distinct: the tied weight appears once
        decay = [p for p in params if p.dim() >= 2 and id(p) not in embeddings]
        no_decay = [p for p in params if p.dim() < 2 or id(p) in embeddings]
        groups = [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=device_type in ("cuda", "cpu"))  # fused kernels exist for both

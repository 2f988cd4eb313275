"""The original notewise LSTM: a tiny embedding, a two-layer LSTM and a linear head.

Implements the shared model interface (see gpt.py): forward, init_cache, step, max_context, num_params,
configure_optimizers. Its cache is the recurrent state, so its context is unlimited (max_context None).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn


@dataclass
class LSTMConfig:
    vocab_size: int  # len(Vocab()): no default, it always comes from the vocabulary
    emb_dim: int = 4  # the original used vocab_size ** 0.25 ~ 4: the LSTM, not the embedding, does the work
    hidden: int = 512  # LSTM state size per layer
    n_layer: int = 2  # stacked LSTM layers
    dropout: float = 0.2  # between LSTM layers and before the head; off in eval()
    block_size: int = 512  # training window (truncated BPTT length); no limit when sampling

    def __post_init__(self):
        if min(self.vocab_size, self.emb_dim, self.hidden, self.n_layer, self.block_size) < 1:
            raise ValueError(f"invalid LSTM config: {self}")


class LSTMCache:
    """Recurrent state for incremental decoding: h and c are (n_layer, B, hidden)."""

    def __init__(self, h: torch.Tensor, c: torch.Tensor):
        self.h, self.c = h, c
        self.batch_size = h.shape[1]
        self.length = 0  # tokens consumed so far


class LSTMModel(nn.Module):
    """Embedding -> LSTM -> dropout -> Linear to vocabulary logits."""

    def __init__(self, config: LSTMConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.emb_dim)
        self.lstm = nn.LSTM(
            config.emb_dim,
            config.hidden,
            num_layers=config.n_layer,
            dropout=config.dropout if config.n_layer > 1 else 0.0,  # nn.LSTM warns on 1 layer + dropout
            batch_first=True,
        )
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden, config.vocab_size)

    max_context = None  # the recurrent state carries unlimited context: the generator never slides

    def num_params(self) -> int:
        """Number of parameters."""
        return sum(p.numel() for p in self.parameters())

    def _run(self, idx: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None):
        x = self.embedding(idx)  # (B, T, emb_dim)
        out, state = self.lstm(x, state)  # (B, T, hidden); state: 2 x (n_layer, B, hidden)
        return self.head(self.drop(out)).float(), state  # (B, T, V)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Training path: idx (B, T) -> logits (B, T, V), float32, from a zero initial state."""
        return self._run(idx, None)[0]

    def init_cache(self, batch_size: int) -> LSTMCache:
        """A zero recurrent state on the model's device and dtype."""
        w = self.head.weight
        shape = (self.config.n_layer, batch_size, self.config.hidden)
        return LSTMCache(w.new_zeros(shape), w.new_zeros(shape))

    @torch.no_grad()
    def step(self, idx: torch.Tensor, cache: LSTMCache) -> torch.Tensor:
        """Inference path: feed idx (B, T_new), advance the state in `cache` in place and return the
        logits (B, T_new, V), float32."""
        if idx.shape[0] != cache.batch_size:
            raise ValueError(f"batch of {idx.shape[0]} does not match the cache's batch of {cache.batch_size}")
        logits, (cache.h, cache.c) = self._run(idx, (cache.h, cache.c))
        cache.length += idx.shape[1]
        return logits

    def configure_optimizers(
        self, weight_decay: float, lr: float, betas: tuple[float, float], device_type: str
    ) -> torch.optim.AdamW:
        """AdamW with weight decay on the LSTM and head weight matrices only: not on biases or the
        embedding."""
        params = list(self.parameters())
        decay = [p for p in params if p.dim() >= 2 and p is not self.embedding.weight]
        no_decay = [p for p in params if p.dim() < 2 or p is self.embedding.weight]
        groups = [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=device_type in ("cuda", "cpu"))  # fused kernels exist for both

"""A small decoder-only Transformer with learned positions and KV-cache sampling.

Radford et al. (2018) / Chen et al. (2020, iGPT). A start token is prepended and the
sequence shifted right, so the output at position t is p(x_t | x_<t) for every t,
the first included. Causal self-attention hides the future.

Sampling takes one forward pass per token. Naively each pass recomputes the whole
prefix: O(T^2) token computations for T tokens. With a **KV cache** every layer keeps
the keys and values of the tokens seen so far, so a step feeds one new token:
O(T) token computations (attention still reads the prefix).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from deepul_helpers.models._common import CategoricalLikelihood, check_levels, check_shape, model_device


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be a multiple of n_heads={n_heads}")
        self.n_heads, self.head_size = n_heads, d_model // n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, cache: dict | None = None, pos: int = 0) -> torch.Tensor:
        """x: (B, T, d) for positions pos..pos+T-1; cache: {'k','v': (B, nh, T_max, hs)} or None."""
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)  # (B, T, d) each
        q, k, v = (z.view(b, t, self.n_heads, self.head_size).transpose(1, 2) for z in (q, k, v))  # (B, nh, T, hs)
        if cache is not None:
            cache["k"][:, :, pos:pos + t] = k
            cache["v"][:, :, pos:pos + t] = v
            k, v = cache["k"][:, :, :pos + t], cache["v"][:, :, :pos + t]  # (B, nh, pos+T, hs)
        # softmax(q k^T / sqrt(hs)) v over the keys at or before each query's position (one fused call)
        p_drop = self.drop.p if self.training else 0.0
        if pos == 0:  # queries 0..T-1 against keys 0..T-1: the causal triangle
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p_drop, is_causal=True)  # (B, nh, T, hs)
        elif t == 1:  # one cached step: the new query sees every key so far
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p_drop)
        else:  # queries pos..pos+T-1 against keys 0..pos+T-1
            query_pos = torch.arange(pos, pos + t, device=x.device)[:, None]
            mask = torch.arange(k.shape[2], device=x.device)[None, :] <= query_pos  # (T, pos+T)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p_drop)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))  # (B, T, d)


class Block(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_heads, dropout)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model),
                                 nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, cache: dict | None = None, pos: int = 0) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), cache, pos)
        return x + self.mlp(self.ln2(x))  # (B, T, d)


class Transformer(CategoricalLikelihood):
    """Causal Transformer over sequences of ``seq_len`` tokens in ``0..vocab_size-1``.

    ``embed(x)``: (B, T) ids -> (B, T, d) embeddings of the shifted input (start token, x_0..x_{T-2}) plus
    positions. ``forward(e, cache=None, pos=0)``: embeddings -> (B, T, vocab_size) logits (takes
    embeddings so gradients can reach the input). ``logits(x)`` = ``forward(embed(x))``;
    ``logits(x)[:, t]`` parameterises p(x_t | x_<t).
    ``loss(x)``: NLL in nats per token. ``sample(n, use_cache=True, prompt=None)``: (n, seq_len) int64.
    """

    def __init__(self, vocab_size: int, seq_len: int, d_model: int = 128, n_heads: int = 4,
                 n_layers: int = 2, dropout: float = 0.0):
        super().__init__()
        if int(vocab_size) < 2 or int(seq_len) < 1:
            raise ValueError(f"need vocab_size >= 2 and seq_len >= 1, got {vocab_size}, {seq_len}")
        self.vocab_size, self.seq_len = int(vocab_size), int(seq_len)
        self.levels = self.vocab_size
        self.d_model, self.n_heads = int(d_model), int(n_heads)
        self.start_token = self.vocab_size  # an extra embedding row
        self.tok_emb = nn.Embedding(self.vocab_size + 1, d_model)
        self.pos_emb = nn.Embedding(self.seq_len, d_model)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, dropout) for _ in range(int(n_layers)))
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, self.vocab_size)

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        start = torch.full_like(x[:, :1], self.start_token)
        return torch.cat([start, x[:, :-1]], dim=1)  # (B, T): start, x_0 .. x_{T-2}

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self._inputs(x)
        positions = torch.arange(x.shape[1], device=x.device)
        return self.tok_emb(tokens) + self.pos_emb(positions)  # (B, T, d)

    def forward(self, e: torch.Tensor, cache: list | None = None, pos: int = 0) -> torch.Tensor:
        h = self.drop(e)
        for i, block in enumerate(self.blocks):
            h = block(h, None if cache is None else cache[i], pos)
        return self.head(self.ln_f(h))  # (B, T, V)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self(self.embed(x))

    def _check(self, x: torch.Tensor, what: str) -> torch.Tensor:
        check_shape(x, (self.seq_len,), what)
        return check_levels(x, self.vocab_size, what)

    def new_cache(self, n: int) -> list[dict]:
        """Empty KV cache for ``n`` sequences: per layer {'k', 'v'}: (n, nh, seq_len, hs)."""
        dev, hs = model_device(self), self.d_model // self.n_heads
        shape = (n, self.n_heads, self.seq_len, hs)
        return [{"k": torch.zeros(shape, device=dev), "v": torch.zeros(shape, device=dev)} for _ in self.blocks]

    @torch.no_grad()
    def sample(self, n: int, use_cache: bool = True, prompt=None, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, seq_len) int64 on the CPU. ``prompt``: ids (P,) or (n, P) that fix the first P tokens.

        ``use_cache=False`` recomputes the whole prefix at every step (same samples, slower).
        """
        if not temperature > 0:
            raise ValueError(f"temperature must be positive (1.0 samples the model itself), got {temperature}")
        n, dev = int(n), model_device(self)
        x = torch.zeros(n, self.seq_len, dtype=torch.long, device=dev)
        n_prompt = 0
        if prompt is not None:
            p = torch.as_tensor(prompt).long()
            p = p.reshape(1, -1).expand(n, -1) if p.dim() == 1 else p  # (n, P)
            if p.dim() != 2 or p.shape[0] != n:
                raise ValueError(f"prompt must have shape (P,) or (n, P) with n={n}, got {tuple(p.shape)}")
            check_levels(p, self.vocab_size, "sample(prompt=...)")
            n_prompt = p.shape[1]
            if n_prompt > self.seq_len:
                raise ValueError(f"prompt has {n_prompt} tokens, more than seq_len={self.seq_len}")
            x[:, :n_prompt] = p.to(dev)
        cache = self.new_cache(n) if use_cache else None
        for t in range(n_prompt, self.seq_len):
            if use_cache:
                if t == n_prompt:  # first step: feed the start token and the prompt at once
                    logits = self(self.embed(x[:, :t + 1]), cache, 0)[:, -1]  # (n, V)
                else:  # one new token: x_{t-1} at position t
                    e = self.tok_emb(x[:, t - 1:t]) + self.pos_emb.weight[t]  # (n, 1, d)
                    logits = self(e, cache, t)[:, -1]
            else:
                logits = self.logits(x[:, :t + 1])[:, -1]  # recompute the prefix
            probs = F.softmax(logits.float() / temperature, dim=-1).cpu()  # (n, V)
            x[:, t] = torch.multinomial(probs, 1, generator=generator).squeeze(1).to(dev)
        return x.cpu()


class ImageTransformer(Transformer):
    """iGPT-style Transformer over the pixels of NHWC uint8 images in raster order (H, W, C).

    ``loss(x)``: NLL in nats/dim of (B, H, W, C) levels. ``sample(n, use_cache=True)``: (n, H, W, C) uint8.
    """

    def __init__(self, image_shape, levels: int, d_model: int = 128, n_heads: int = 4, n_layers: int = 2,
                 dropout: float = 0.0):
        if len(tuple(image_shape)) != 3:
            raise ValueError(f"image_shape must be (H, W, C), got {image_shape}")
        if not 2 <= int(levels) <= 256:
            raise ValueError(f"levels must be in 2..256 for uint8 images, got {levels}")
        h, w, c = (int(s) for s in image_shape)
        super().__init__(levels, h * w * c, d_model, n_heads, n_layers, dropout)
        self.image_shape = (h, w, c)

    def _check(self, x: torch.Tensor, what: str) -> torch.Tensor:
        check_shape(x, self.image_shape, what)
        return super()._check(x.reshape(x.shape[0], -1), what)  # (B, H*W*C) in raster order

    @torch.no_grad()
    def sample(self, n: int, use_cache: bool = True, prompt=None, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        flat = super().sample(n, use_cache, prompt, temperature, generator)
        return flat.reshape(int(n), *self.image_shape).to(torch.uint8)


class CharTransformer(Transformer):
    """Character-level Transformer for the ``text_*`` sets: (N, seq_len) int64 ids in ``0..vocab_size-1``.

    ``sample(n, use_cache=True, prompt=ids)``: (n, seq_len) int64 continuing ``prompt``
    (decode with ``deepul_helpers.data.decode``).
    """

    def __init__(self, vocab_size: int, seq_len: int, d_model: int = 128, n_heads: int = 4, n_layers: int = 2,
                 dropout: float = 0.0):
        super().__init__(vocab_size, seq_len, d_model, n_heads, n_layers, dropout)

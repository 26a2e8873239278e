"""WaveNet-style model: dilated causal 1D convolutions over a sequence of levels.

van den Oord et al. (2016). The input is shifted right by one (a start token
first), so a causal convolution that sees positions <= t of its input sees only
x_<t. Stacking convolutions with dilations 1, 2, 4, ... grows the receptive field
exponentially with depth: 1 + (kernel_size - 1) * sum(dilations) positions.
Each residual block is gated (tanh * sigmoid) and feeds a skip connection.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from deepul_helpers.models._common import CategoricalLikelihood, check_levels, check_shape, model_device


class CausalConv1d(nn.Conv1d):
    """Conv1d padded on the left only: output t sees inputs t - (k-1)*dilation .. t. (B, C, T) -> (B, C', T)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1):
        super().__init__(in_channels, out_channels, kernel_size, dilation=dilation)
        self.left = (kernel_size - 1) * dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (self.left, 0)))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, kernel_size: int, dilation: int):
        super().__init__()
        self.conv = CausalConv1d(channels, 2 * channels, kernel_size, dilation)
        self.res = nn.Conv1d(channels, channels, 1)
        self.skip = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor):
        a, b = self.conv(x).chunk(2, dim=1)  # (B, C, T) each
        z = torch.tanh(a) * torch.sigmoid(b)
        return x + self.res(z), self.skip(z)


class WaveNet(CategoricalLikelihood):
    """Dilated causal CNN for sequences ``(N, seq_len)`` int64 in ``0..levels-1`` (the ``signals`` set).

    n_layers residual blocks with dilations ``dilations`` (default 1, 2, 4, ..., 2**(n_layers-1)).
    ``embed(x)``: (B, T) -> (B, C, T) embeddings of the shifted input. ``forward(e)``: (B, C, T) ->
    (B, T, levels) logits (takes embeddings so gradients can reach the input).
    ``logits(x)[:, t]`` parameterises p(x_t | x_<t). ``loss(x)``: NLL in nats per step.
    ``sample(n)``: (n, seq_len) int64 on the CPU, seq_len forward passes.
    """

    def __init__(self, seq_len: int, levels: int = 256, n_layers: int = 6, dilations=None,
                 n_channels: int = 32, kernel_size: int = 2):
        super().__init__()
        self.seq_len, self.levels = int(seq_len), int(levels)
        if self.seq_len < 1 or self.levels < 2:
            raise ValueError(f"need seq_len >= 1 and levels >= 2, got {seq_len}, {levels}")
        dilations = tuple(2**i for i in range(int(n_layers))) if dilations is None else tuple(dilations)
        if not dilations or any(int(d) < 1 for d in dilations):
            raise ValueError(f"dilations must be positive integers, got {dilations}")
        self.dilations = dilations
        self.receptive_field = 1 + (kernel_size - 1) * (1 + sum(dilations))  # in shifted-input positions
        self.start_token = self.levels
        self.tok_emb = nn.Embedding(self.levels + 1, n_channels)
        self.input_conv = CausalConv1d(n_channels, n_channels, kernel_size)
        self.blocks = nn.ModuleList(ResidualBlock(n_channels, kernel_size, int(d)) for d in dilations)
        self.out1 = nn.Conv1d(n_channels, n_channels, 1)
        self.out2 = nn.Conv1d(n_channels, self.levels, 1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        start = torch.full_like(x[:, :1], self.start_token)
        tokens = torch.cat([start, x[:, :-1]], dim=1)  # (B, T): start, x_0 .. x_{T-2}
        return self.tok_emb(tokens).transpose(1, 2)  # (B, C, T)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        h = self.input_conv(e)  # (B, C, T)
        skips = 0
        for block in self.blocks:
            h, s = block(h)
            skips = skips + s
        out = self.out2(F.relu(self.out1(F.relu(skips))))  # (B, levels, T)
        return out.transpose(1, 2)  # (B, T, levels)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self(self.embed(x))

    def _check(self, x: torch.Tensor, what: str) -> torch.Tensor:
        check_shape(x, (self.seq_len,), what)
        return check_levels(x, self.levels, what)

    def next_logits(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """(B, levels) logits of p(x_t | x_<t), computed from the receptive field only (equals logits(x)[:, t])."""
        lo = max(0, t + 1 - self.receptive_field)  # output t sees shifted inputs lo..t only
        e = self.embed(x[:, :t + 1])[:, :, lo:]  # (B, C, t+1-lo)
        return self(e)[:, -1]

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        x = torch.zeros(int(n), self.seq_len, dtype=torch.long, device=model_device(self))
        for t in range(self.seq_len):
            probs = F.softmax(self.next_logits(x, t), dim=-1).cpu()  # (n, levels)
            x[:, t] = torch.multinomial(probs, 1, generator=generator).squeeze(1).to(x.device)
        return x.cpu()

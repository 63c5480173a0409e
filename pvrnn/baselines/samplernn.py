"""A two-tier SampleRNN (Mehri et al. 2017): a GRU over frames conditions a per-sample MLP.

Tier 2 reads the previous frame of ``frame_size`` samples (dequantized) once per frame and
emits one conditioning vector per sample position of the next frame; tier 1 predicts each
sample from the embeddings of the ``frame_size`` samples before it plus that vector.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import check_int
from .wavenet import next_code

__all__ = ["SampleRNN"]


class SampleRNN(nn.Module):
    """Two-tier SampleRNN on 8-bit mu-law samples.

    Args:
        frame_size (int): samples per frame of the frame tier (16 in the paper's 2-tier model).
        hidden_size (int): GRU units and MLP width.
        embedding (int): sample embedding size.
        classes (int): mu-law levels (256).

    Attributes:
        context (int): samples needed before the first predicted one (``frame_size``).

    Shapes: :meth:`forward` takes codes ``(batch, frame_size + T)`` (``T`` a multiple of
    ``frame_size``) and returns logits ``(batch, T, classes)`` for samples
    ``frame_size .. frame_size + T - 1``, and the GRU state ``(1, batch, hidden_size)``.

    Example:
        >>> net = SampleRNN(frame_size=16, hidden_size=64)
        >>> logits, h = net(torch.randint(256, (4, 16 + 512)))      # (4, 512, 256)
    """

    def __init__(self, frame_size: int = 16, hidden_size: int = 128, embedding: int = 16,
                 classes: int = 256) -> None:
        super().__init__()
        self.frame_size = fs = check_int("frame_size", frame_size, low=1)
        self.hidden_size = h = check_int("hidden_size", hidden_size, low=1)
        self.classes = check_int("classes", classes, low=2)
        self.context = fs
        self.frame_rnn = nn.GRU(fs, h, batch_first=True)
        self.upsample = nn.Linear(h, fs * h)  # one conditioning vector per sample position
        self.table = nn.Embedding(self.classes, check_int("embedding", embedding, low=1))
        self.inputs = nn.Linear(fs * embedding, h, bias=False)
        self.mlp = nn.Sequential(nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, classes))

    def dequantize(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes -> ``[-2, 2]`` floats, the frame tier's input (as the paper scales them)."""
        return codes.to(torch.float32) * (4.0 / (self.classes - 1)) - 2.0

    def forward(self, codes: torch.Tensor, state: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        batch, length = codes.shape
        fs, h = self.frame_size, self.hidden_size
        t = length - fs
        frames = self.dequantize(codes[:, :t]).view(batch, t // fs, fs)  # previous frames
        out, state = self.frame_rnn(frames, state)  # (B, J, H)
        cond = self.upsample(out).view(batch, t, h)  # (B, T, H): position within the frame
        windows = self.table(codes[:, :-1]).unfold(1, fs, 1)  # (B, T, E, fs): the fs before
        x = self.inputs(windows.transpose(-1, -2).reshape(batch, t, -1)) + cond
        return self.mlp(x), state

    def loss(self, codes: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy (nats per sample) of ``codes[:, frame_size:]`` ``(batch,
        frame_size + T)``."""
        logits, _ = self(codes)
        return nn.functional.cross_entropy(logits.reshape(-1, self.classes),
                                           codes[:, self.frame_size :].reshape(-1))

    @torch.inference_mode()
    def generate(self, prime: torch.Tensor, n: int, generator: torch.Generator | None = None,
                 temperature: float = 1.0, teacher: torch.Tensor | None = None) -> torch.Tensor:
        """Continue ``prime`` codes ``(batch, P)`` (``P`` a multiple of ``frame_size``, at
        least one frame) by ``n`` sampled codes ``(batch, n)``; ``teacher`` as in
        :meth:`SampleWaveNet.generate`."""
        fs, h = self.frame_size, self.hidden_size
        batch, p = prime.shape
        state = None
        if p > fs:  # the frame tier runs over the primer's frames but the last
            _, state = self.frame_rnn(self.dequantize(prime[:, : p - fs]).view(batch, -1, fs))
        history = torch.cat([prime[:, p - fs :], prime.new_zeros(batch, n)], 1)
        w_in = self.inputs.weight.t()
        logits = [] if teacher is not None else None
        cond = None
        for i in range(n):
            if i % fs == 0:  # a new frame: one GRU step over the last fs samples
                frame = self.dequantize(history[:, i : i + fs]).unsqueeze(1)
                out, state = self.frame_rnn(frame, state)
                cond = self.upsample(out[:, 0]).view(batch, fs, h)
            emb = self.table(history[:, i : i + fs]).reshape(batch, -1)
            last = self.mlp(torch.addmm(cond[:, i % fs], emb, w_in))
            code = next_code(last, i, teacher, logits, temperature, generator)
            history[:, i + fs] = code
        return torch.stack(logits, 1) if teacher is not None else history[:, fs:]

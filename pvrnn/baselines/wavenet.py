"""A small WaveNet: sample embeddings -> dilated causal stack -> 256-way softmax.

The stack is :class:`~pvrnn.model.tcn.TemporalConvNet` (the ``cell="tcn"`` backbone: gated
residual layers, skip connections, dilations ``1 .. 2**(depth-1)`` per cycle), so generation
reuses its ring-buffer :class:`~pvrnn.model.tcn.TCNStepper`: one column of work per sample.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import check_int
from ..model.tcn import TCNStepper, TemporalConvNet

__all__ = ["SampleWaveNet", "next_code"]


def next_code(last: torch.Tensor, i: int, teacher: torch.Tensor | None, logits: list | None,
              temperature: float, generator: torch.Generator | None) -> torch.Tensor:
    """The code fed back at step ``i``: ``teacher[:, i]`` (then ``last`` is kept in
    ``logits``), or a draw from ``softmax(last / temperature)``, ``(batch,)``."""
    if teacher is not None:
        logits.append(last)
        return teacher[:, i]
    probs = torch.softmax(last / temperature, -1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


class SampleWaveNet(nn.Module):
    """WaveNet on 8-bit mu-law samples.

    Args:
        channels (int): embedding size and channels of the stack.
        cycles (int): dilation cycles.
        depth (int): layers per cycle (dilations ``1 .. 2**(depth-1)``).
        classes (int): mu-law levels (256).

    Attributes:
        context (int): samples of history an output sees beyond the current one
            (receptive field - 1; ``cycles * (2**depth - 1)``).

    Shapes: :meth:`forward` takes codes ``(batch, time)`` int64 and returns logits
    ``(batch, time, classes)`` for the *next* sample after each, and the stack's state.

    Example:
        >>> net = SampleWaveNet(channels=32, cycles=1, depth=9)    # 512-sample field
        >>> logits, state = net(torch.randint(256, (4, 2000)))      # (4, 2000, 256)
    """

    def __init__(self, channels: int = 32, cycles: int = 1, depth: int = 9,
                 classes: int = 256) -> None:
        super().__init__()
        self.classes = check_int("classes", classes, low=2)
        channels = check_int("channels", channels, low=1)
        self.table = nn.Embedding(self.classes, channels)
        self.rnn = TemporalConvNet(channels, channels, check_int("cycles", cycles, low=1),
                                   depth=check_int("depth", depth, low=1))
        self.head = nn.Linear(channels, self.classes)
        self.n_components = 1  # what TCNStepper reads: one "component" of `classes` logits
        self.context = self.rnn.receptive_field - 1

    def raw(self, x: torch.Tensor, state=None) -> tuple[torch.Tensor, tuple]:
        """Embedded input ``(batch, time, channels)`` -> logits ``(batch, time, 1, classes)``."""
        hidden, state = self.rnn(x, state)
        return self.head(hidden).unsqueeze(-2), state

    def forward(self, codes: torch.Tensor, state=None) -> tuple[torch.Tensor, tuple]:
        raw, state = self.raw(self.table(codes), state)
        return raw[..., 0, :], state

    def loss(self, codes: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy (nats per sample) of ``codes`` ``(batch, context + n + 1)``,
        predicting its last ``n`` samples from a full receptive field each."""
        logits, _ = self(codes[:, :-1])
        logits = logits[:, self.context :]
        return nn.functional.cross_entropy(logits.reshape(-1, self.classes),
                                           codes[:, self.context + 1 :].reshape(-1))

    @torch.inference_mode()
    def generate(self, prime: torch.Tensor, n: int, generator: torch.Generator | None = None,
                 temperature: float = 1.0, teacher: torch.Tensor | None = None) -> torch.Tensor:
        """Continue ``prime`` codes ``(batch, P)`` by ``n`` sampled codes ``(batch, n)``.

        With ``teacher`` codes ``(batch, n)``, those are fed instead of the samples and the
        logits ``(batch, n, classes)`` of every step are returned (a test of the step path).
        """
        stepper = TCNStepper(self)
        last = stepper.prime(self.table(prime))[:, 0]
        out = torch.empty(prime.shape[0], n, dtype=torch.int64, device=prime.device)
        logits = [] if teacher is not None else None
        for i in range(n):
            code = next_code(last, i, teacher, logits, temperature, generator)
            out[:, i] = code
            if i + 1 < n:
                last = stepper.step(self.table(code))[:, 0]
        return torch.stack(logits, 1) if teacher is not None else out

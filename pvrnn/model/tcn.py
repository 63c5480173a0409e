"""A causal dilated-convolution backbone (WaveNet/TCN) for :class:`~pvrnn.SpectralRNN`.

``SpectralRNN(..., cell="tcn")`` puts a :class:`TemporalConvNet` where the LSTM/GRU would be:
the same input (embedding), the same mixture-density head, the same ``forward(x, state)``
contract, so the :class:`~pvrnn.model.train.Trainer` and the
:class:`~pvrnn.model.sample.Sampler` run it unchanged.

The stack (van den Oord et al. 2016, "WaveNet"; Bai et al. 2018, "TCN"): a 1x1 input
projection to ``hidden_size`` channels, then ``num_layers`` cycles of :data:`DILATION_DEPTH`
gated residual layers with dilations ``1, 2, 4, ..., 2**(DILATION_DEPTH-1)`` and kernel size
:data:`KERNEL_SIZE`. Layer ``l`` computes, causally along the frame axis::

    a = conv_dilated(h)              # (B, 2H, T): filter | gate
    z = tanh(a_filter) * sigmoid(a_gate)
    r, s = conv_1x1(z)               # residual and skip parts, each (B, H, T)
    h = h + r;   skip = skip + s

and the output is ``relu(W_out relu(skip) + b_out)``, ``(B, T, H)``, which the head reads.

Receptive field: ``1 + (KERNEL_SIZE - 1) * num_layers * (2**DILATION_DEPTH - 1)`` frames: 127
frames for ``num_layers=2`` (0.37 s at 44.1 kHz with ``hop_length=128``; 1.47 s with 512).

State. Where a recurrent network carries ``(h, c)`` between truncated-BPTT windows, the TCN
carries each layer's last ``(KERNEL_SIZE - 1) * dilation`` input columns: a window run with
the previous window's state sees exactly the left context a run over the whole sequence
would, so windowed training, validation and generation all compute the same function.

Generation (:class:`TCNStepper`) keeps those columns as ring buffers, one per layer (the
"fast WaveNet" queues of Paine et al. 2016): a new frame costs one column of work per layer,
``O(num_layers * DILATION_DEPTH * H^2)``, not a pass over the receptive field.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import check_int, fail

__all__ = ["TemporalConvNet", "TCNStepper", "DILATION_DEPTH", "KERNEL_SIZE", "receptive_field",
           "dilations"]

#: Layers per dilation cycle: dilations ``1, 2, ..., 2**(DILATION_DEPTH - 1)`` (1 to 32 frames).
DILATION_DEPTH = 6
#: Taps of each dilated convolution (WaveNet's 2).
KERNEL_SIZE = 2


def dilations(num_layers: int, depth: int = DILATION_DEPTH) -> list[int]:
    """The dilation of every layer: ``num_layers`` cycles of ``1, 2, ..., 2**(depth-1)``."""
    return [2 ** (i % depth) for i in range(num_layers * depth)]


def receptive_field(num_layers: int, kernel_size: int = KERNEL_SIZE,
                    depth: int = DILATION_DEPTH) -> int:
    """Frames an output depends on (the current one included):
    ``1 + (kernel_size - 1) * sum(dilations)``."""
    return 1 + (kernel_size - 1) * sum(dilations(num_layers, depth))


class TemporalConvNet(nn.Module):
    """Causal dilated residual convolutions over frames, called like ``nn.LSTM(batch_first=True)``.

    Args:
        input_size (int): features ``F_in`` of each input frame.
        hidden_size (int): channels ``H`` of the residual stream, the skips and the output.
        num_layers (int): dilation cycles (each :data:`DILATION_DEPTH` layers).
        batch_first (bool): must be ``True`` (accepted for ``nn.LSTM`` call compatibility).
        dropout (float): dropout on each layer's gated activation, in ``[0, 1)``.
        kernel_size (int): taps per dilated convolution, >= 2.
        depth (int): layers per dilation cycle, >= 1.

    Shapes: ``x`` ``(batch, time, F_in)`` or ``(time, F_in)`` -> output ``(batch, time, H)``
    (or ``(time, H)``) and the state: a tuple with, per layer, its last
    ``(kernel_size - 1) * dilation`` input columns ``(batch, H, (kernel_size - 1) * dilation)``
    (unbatched: no batch dim).

    Example:
        >>> tcn = TemporalConvNet(40, 64, num_layers=2)       # receptive field 127 frames
        >>> out, state = tcn(torch.randn(8, 20, 40))          # (8, 20, 64)
        >>> more, state = tcn(torch.randn(8, 20, 40), state)  # continues the sequences
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 2,
                 batch_first: bool = True, dropout: float = 0.0,
                 kernel_size: int = KERNEL_SIZE, depth: int = DILATION_DEPTH) -> None:
        super().__init__()
        if batch_first is not True:
            raise fail("batch_first", batch_first, "True (frames-major batches)")
        self.input_size = check_int("input_size", input_size, low=1)
        self.hidden_size = h = check_int("hidden_size", hidden_size, low=1)
        self.num_layers = check_int("num_layers", num_layers, low=1)
        self.kernel_size = check_int("kernel_size", kernel_size, low=2)
        self.depth = check_int("depth", depth, low=1)
        self.dilations = dilations(self.num_layers, self.depth)
        self.receptive_field = receptive_field(self.num_layers, self.kernel_size, self.depth)
        self.dropout = float(dropout)
        self.input = nn.Linear(self.input_size, h)
        self.gates = nn.ModuleList(
            nn.Conv1d(h, 2 * h, self.kernel_size, dilation=d) for d in self.dilations)
        self.mixes = nn.ModuleList(nn.Conv1d(h, 2 * h, 1) for _ in self.dilations)
        self.output = nn.Linear(h, h)
        self.reset_parameters()

    @property
    def context(self) -> list[int]:
        """Per layer, the past input columns it reads: ``(kernel_size - 1) * dilation``."""
        return [(self.kernel_size - 1) * d for d in self.dilations]

    def reset_parameters(self) -> None:
        """Default torch initialisation; the residual branches start at half scale."""
        for module in (self.input, self.output, *self.gates, *self.mixes):
            module.reset_parameters()
        with torch.no_grad():
            for mix in self.mixes:  # a deep residual sum starts near the identity
                mix.weight[: self.hidden_size].mul_(0.5)

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"kernel_size={self.kernel_size}, dilations={self.dilations[:self.depth]}..., "
                f"receptive_field={self.receptive_field}")

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, ...] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Run over ``x`` (see the class docstring for shapes); ``state=None`` starts from
        silence (zero columns before the first frame)."""
        unbatched = x.dim() == 2
        if unbatched:
            x = x.unsqueeze(0)
            state = None if state is None else tuple(s.unsqueeze(0) for s in state)
        if state is not None and len(state) != len(self.dilations):
            raise fail("state", f"{len(state)} tensors", f"{len(self.dilations)} layer caches")
        h = self.input(x).transpose(1, 2)  # (B, H, T)
        skip = None
        caches = []
        for k, (gate, mix, past) in enumerate(zip(self.gates, self.mixes, self.context)):
            if state is None:
                padded = F.pad(h, (past, 0))
            else:
                padded = torch.cat([state[k].to(h.dtype), h], dim=-1)  # (B, H, past + T)
            caches.append(padded[..., padded.shape[-1] - past :])
            a = gate(padded)  # (B, 2H, T)
            z = torch.tanh(a[:, : self.hidden_size]) * torch.sigmoid(a[:, self.hidden_size :])
            if self.dropout and self.training:
                z = F.dropout(z, self.dropout, training=True)
            rs = mix(z)  # (B, 2H, T): residual | skip
            h = h + rs[:, : self.hidden_size]
            s = rs[:, self.hidden_size :]
            skip = s if skip is None else skip + s
        out = F.relu(self.output(F.relu(skip).transpose(1, 2)))  # (B, T, H)
        if unbatched:
            return out[0], tuple(c[0] for c in caches)
        return out, tuple(caches)


class TCNStepper:
    """Runs a ``cell="tcn"`` :class:`~pvrnn.SpectralRNN` one frame at a time (generation).

    :meth:`prime` runs the network over the primer once (a full, parallel forward) and turns
    each layer's cached columns into a ring buffer ``(context, batch, H)``; :meth:`step` then
    reads each layer's taps from its ring, computes one column and overwrites the oldest entry.
    Ring positions are host integers, so a step makes no device round trip. The result equals
    the full forward pass over the whole sequence (``tests/model/test_tcn.py``).

    Example:
        >>> stepper = net.stepper()
        >>> raw = stepper.prime(x)           # x (batch, time, F): last output (batch, C, P)
        >>> raw = stepper.step(x[:, -1])     # one frame, (batch, F) -> (batch, C, P)
        >>> stepper.input.copy_(x[:, -1]); stepper.advance()   # the same into stepper.head
    """

    def __init__(self, net: Any) -> None:
        self.net = net
        tcn: TemporalConvNet = net.rnn
        self.tcn = tcn
        self.h = tcn.hidden_size
        embed = getattr(net, "embed", None)  # an optional input embedding / low-rank head
        project = getattr(net, "project", None)
        self.embed = None if embed is None else (embed.bias, embed.weight.t())
        self.project_t = None if project is None else project.weight.t()
        self.entry = (tcn.input.bias, tcn.input.weight.t())  # the stack's input layer
        # Tap j of a layer reads the column (kernel_size - 1 - j) * dilation frames back.
        self.taps = [[gate.weight[:, :, j].t() for j in range(tcn.kernel_size)]
                     for gate in tcn.gates]  # (H, 2H) each
        self.gate_bias = [gate.bias for gate in tcn.gates]
        self.mixes = [(mix.bias, mix.weight[:, :, 0].t()) for mix in tcn.mixes]
        self.output = (tcn.output.bias, tcn.output.weight.t())
        self.readout = (net.head.bias, net.head.weight.t())  # the mixture head
        self.shape = (net.n_components, -1)
        self.rings: list[torch.Tensor] = []
        self.position = [0] * len(tcn.dilations)

    def prime(self, x: torch.Tensor, batch: int | None = None) -> torch.Tensor:
        """Run over ``x`` ``(batch, time, F)`` from silence; returns the last head output.

        With ``batch``, ``x`` is one sequence ``(1, time, F)`` run once, and its caches are
        copied to ``batch`` streams.
        """
        raw, state = self.net.raw(x)
        if batch is not None:
            raw = raw.expand(batch, *raw.shape[1:])
        n = raw.shape[0]
        # (B, H, context) -> ring (context, B, H), oldest column first at position 0
        self.rings = [s.expand(n, -1, -1).permute(2, 0, 1).contiguous() for s in state]
        self.position = [0] * len(self.rings)
        self.input = torch.zeros(n, x.shape[-1], dtype=raw.dtype, device=raw.device)
        self.head = raw[:, -1].clone()
        return raw[:, -1]

    def advance(self) -> torch.Tensor:
        """:meth:`step` on :attr:`input` ``(batch, F)`` into :attr:`head` ``(batch, C, P)``
        (the in-place protocol of :class:`~pvrnn.model.network.Stepper`)."""
        return self.head.copy_(self.step(self.input))

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """One frame ``x`` ``(batch, F)`` -> the head output ``(batch, C, P)``."""
        if self.embed is not None:
            x = torch.addmm(self.embed[0], x, self.embed[1])
        h = torch.addmm(self.entry[0], x, self.entry[1])  # (B, H)
        last = self.tcn.kernel_size - 1
        skip = None
        for k, (ring, taps, dilation) in enumerate(zip(self.rings, self.taps,
                                                       self.tcn.dilations)):
            p = self.position[k]
            a = torch.addmm(self.gate_bias[k], h, taps[last])  # the current column's tap
            for j in range(last):  # older taps: (last - j) * dilation frames back
                a.addmm_(ring[(p + j * dilation) % ring.shape[0]], taps[j])
            ring[p].copy_(h)  # the oldest column is no longer needed: it takes the newest
            self.position[k] = (p + 1) % ring.shape[0]
            z = torch.tanh(a[:, : self.h]).mul_(torch.sigmoid(a[:, self.h :]))
            rs = torch.addmm(self.mixes[k][0], z, self.mixes[k][1])
            h = h + rs[:, : self.h]
            skip = rs[:, self.h :] if skip is None else skip.add_(rs[:, self.h :])
        out = torch.relu(torch.addmm(self.output[0], torch.relu(skip), self.output[1]))
        if self.project_t is not None:
            out = out @ self.project_t
        return torch.addmm(self.readout[0], out, self.readout[1]).view(out.shape[0], *self.shape)

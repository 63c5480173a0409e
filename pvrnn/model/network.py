"""The recurrent network: a stacked LSTM/GRU with a mixture-density head.

:class:`SpectralRNN` reads a sequence of feature vectors (codec output, ``(batch, time, F)``)
and emits, for every step, a :class:`~pvrnn.Mixture` over the *next* feature vector: mixture
logits, means and log standard deviations, one variance per feature per component (diagonal
covariance). With ``loss="mse"`` it is the plain regression of the GRUV paper instead: one
component whose mean is the prediction, trained by mean squared error.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Union

import torch
from torch import nn

from ..errors import check_choice, check_int, fail
from .mixture import DEFAULT_MIN_VARIANCE, Mixture
from .tcn import TCNStepper, TemporalConvNet

__all__ = ["SpectralRNN", "check_network_settings"]

CELLS = ("lstm", "gru", "tcn")
LOSSES = ("mdn", "mse")


def check_network_settings(
    hidden_size: Any, num_layers: Any, n_components: Any, cell: Any, dropout: Any, loss: Any,
    bottleneck: Any = None, input_noise: Any = 0.0,
) -> dict[str, Any]:
    """The network's settings, checked: the one place these rules live (the network and
    :class:`~pvrnn.model.config.SoundModelConfig` both call it).

    Returns:
        dict: the settings as ``SpectralRNN`` keeps them (ints, names, ``dropout`` a float).

    Raises:
        PvrnnError: naming the first bad setting (``n_components`` must be 1 with ``loss="mse"``,
            ``dropout`` in ``[0, 1)``).
    """
    checked = dict(
        hidden_size=check_int("hidden_size", hidden_size, low=1),
        num_layers=check_int("num_layers", num_layers, low=1),
        n_components=check_int("n_components", n_components, low=1),
        cell=check_choice("cell", cell, CELLS),
        loss=check_choice("loss", loss, LOSSES),
    )
    if checked["loss"] == "mse" and checked["n_components"] != 1:
        raise fail("n_components", n_components, "1 with loss='mse' (a plain regression)")
    dropout_ok = isinstance(dropout, numbers.Real) and not isinstance(dropout, bool)
    if not dropout_ok or not 0.0 <= float(dropout) < 1.0:
        raise fail("dropout", dropout, "a number in [0, 1)")
    checked["dropout"] = float(dropout)
    checked["bottleneck"] = None if bottleneck is None else check_int("bottleneck", bottleneck,
                                                                      low=1)
    noise_ok = isinstance(input_noise, numbers.Real) and not isinstance(input_noise, bool)
    if not noise_ok or not (math.isfinite(input_noise) and input_noise >= 0):
        raise fail("input_noise", input_noise, "a standard deviation >= 0 (feature units)")
    checked["input_noise"] = float(input_noise)
    return checked

#: The recurrent state: ``(h, c)`` for an LSTM, ``h`` for a GRU; each
#: ``(num_layers, batch, hidden_size)``.
State = Union[torch.Tensor, "tuple[torch.Tensor, torch.Tensor]"]


class SpectralRNN(nn.Module):
    """Stacked LSTM or GRU (``batch_first``, cuDNN on GPU) with a linear mixture-density head.

    Args:
        n_features (int): size ``F`` of each input and predicted feature vector
            (``2 * n_partials`` for a :class:`~pvrnn.FrameCodec`).
        hidden_size (int): units per recurrent layer (the blog used 100-150).
        num_layers (int): stacked recurrent layers.
        n_components (int): mixture components ``C`` (1 for a single Gaussian).
        cell (str): ``"lstm"`` (default; the forget-gate bias starts at 1, as sound-rnn did),
            ``"gru"``, or ``"tcn"``: a causal dilated-convolution stack
            (:class:`~pvrnn.model.tcn.TemporalConvNet`; ``num_layers`` cycles of dilations
            1..32, a receptive field of ``1 + 63 * num_layers`` frames) whose state is the
            cached past activations of each layer.
        dropout (float): dropout between recurrent layers, in ``[0, 1)`` (needs
            ``num_layers > 1``).
        loss (str): ``"mdn"`` (mixture negative log-likelihood, default) or ``"mse"`` (plain
            regression: one component of fixed unit variance whose mean is trained by mean
            squared error; generate from it with ``variance_scale=0`` for GRUV's deterministic
            output).
        min_variance (float): variance floor of the emitted mixtures, in feature units.
        bottleneck (int, optional): when set, the input frame is first embedded linearly in
            this many dimensions and the head reads a linear projection of the last layer to
            this many dimensions (a low-rank head). For full-band frames (thousands of
            features) this cuts the cost of a step several times (see
            :data:`pvrnn.SoundModelConfig`).
        input_noise (float): standard deviation of Gaussian noise added to the input features
            in training mode (none in eval mode), against exposure bias.

    Shapes: ``x`` is ``(batch, time, F)`` (or unbatched ``(time, F)``); the mixture's tensors
    are ``(batch, time, C)`` and ``(batch, time, C, F)``.

    Example:
        >>> net = pvrnn.SpectralRNN(40, hidden_size=100, num_layers=2, n_components=3)
        >>> mixture, state = net(torch.randn(8, 20, 40))     # means (8, 20, 3, 40)
        >>> loss = net.loss(mixture, torch.randn(8, 20, 40))
    """

    def __init__(
        self,
        n_features: int,
        hidden_size: int = 100,
        num_layers: int = 2,
        n_components: int = 3,
        cell: str = "lstm",
        dropout: float = 0.0,
        loss: str = "mdn",
        min_variance: float = DEFAULT_MIN_VARIANCE,
        bottleneck: int | None = None,
        input_noise: float = 0.0,
    ) -> None:
        super().__init__()
        self.n_features = check_int("n_features", n_features, low=1)
        checked = check_network_settings(hidden_size, num_layers, n_components, cell, dropout,
                                         loss, bottleneck, input_noise)
        self.hidden_size, self.num_layers = checked["hidden_size"], checked["num_layers"]
        self.n_components, self.cell = checked["n_components"], checked["cell"]
        self.loss_kind, self.dropout = checked["loss"], checked["dropout"]
        self.min_variance = float(min_variance)
        self.bottleneck = checked["bottleneck"]
        self.input_noise = checked["input_noise"]
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU, "tcn": TemporalConvNet}[self.cell]
        inner = self.n_features if self.bottleneck is None else self.bottleneck
        # A bottleneck: a linear embedding of the input frame and a low-rank head. For full-band
        # frames (thousands of features) the input and output matrices dominate the cost of a
        # step; spectra are strongly correlated across bins, so little is lost.
        self.embed = None if self.bottleneck is None else nn.Linear(self.n_features, inner)
        self.rnn = rnn(
            inner, self.hidden_size, self.num_layers, batch_first=True,
            dropout=self.dropout if self.num_layers > 1 else 0.0,
        )
        # Per component: [logit | means (F) | log-scales (F)]; mse: the means only.
        per_component = 1 + 2 * self.n_features if self.loss_kind == "mdn" else self.n_features
        self.project = (None if self.bottleneck is None
                        else nn.Linear(self.hidden_size, self.bottleneck, bias=False))
        head_in = self.hidden_size if self.bottleneck is None else self.bottleneck
        self.head = nn.Linear(head_in, self.n_components * per_component)
        if self.loss_kind == "mse":
            # A regression's Gaussian reading: its variance is that of its residuals, tracked
            # per feature (moving average over training batches), so sampling an MSE network
            # at variance_scale=1 adds noise of the size of its own errors, not unit noise.
            self.register_buffer("residual_variance", torch.ones(self.n_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Default torch initialisation, forget-gate biases at 1 (LSTM), head biases at 0."""
        self.rnn.reset_parameters()
        self.head.reset_parameters()
        for layer in (self.embed, self.project):
            if layer is not None:
                layer.reset_parameters()
        with torch.no_grad():
            nn.init.zeros_(self.head.bias)
            if self.cell == "lstm":
                h = self.hidden_size
                for layer in range(self.num_layers):  # gate order: input, forget, cell, output
                    getattr(self.rnn, f"bias_ih_l{layer}")[h : 2 * h].fill_(1.0)
                    getattr(self.rnn, f"bias_hh_l{layer}")[h : 2 * h].zero_()

    def extra_repr(self) -> str:
        return (f"n_features={self.n_features}, n_components={self.n_components}, "
                f"loss={self.loss_kind!r}, bottleneck={self.bottleneck}")

    # -- forward ----------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, state: State | None = None) -> tuple[Mixture, State]:
        """Run the network over a sequence.

        Args:
            x (Tensor): ``(batch, time, F)`` or ``(time, F)`` features.
            state (optional): the recurrent state from a previous call, to continue a sequence
                (``None`` starts from zeros).

        Returns:
            tuple: ``(mixture, state)``: a :class:`~pvrnn.Mixture` over the next feature vector
            at every step (batch shape ``(batch, time)`` or ``(time,)``), and the state after
            the last step.

        Raises:
            PvrnnError: when ``x`` is not ``(batch, time, F)`` / ``(time, F)``.
        """
        if not isinstance(x, torch.Tensor) or x.dim() not in (2, 3) or (
            x.shape[-1] != self.n_features
        ):
            raise fail("x", x, f"a tensor (batch, time, {self.n_features}) or "
                       f"(time, {self.n_features})")
        raw, state = self.raw(x, state)
        return self.mixture(raw), state

    def raw(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Unchecked forward: head output ``(..., time, C, 1 + 2F)``; mse ``(..., time, 1, F)``."""
        if self.training and self.input_noise > 0:  # learn to continue from imperfect frames
            x = x + self.input_noise * torch.randn_like(x)
        if self.embed is not None:
            x = self.embed(x)
        hidden, state = self.rnn(x, state)  # (batch, time, hidden)
        if self.project is not None:
            hidden = self.project(hidden)
        out = self.head(hidden)  # (batch, time, C * per_component)
        return out.unflatten(-1, (self.n_components, -1)), state

    def mixture(self, raw: torch.Tensor) -> Mixture:
        """The :class:`Mixture` viewed from a raw head output (no copies)."""
        if self.loss_kind == "mse":
            return Mixture(
                logits=torch.zeros_like(raw[..., 0]), means=raw,
                log_scales=(0.5 * self.residual_variance.log()).expand_as(raw),
                min_variance=0.0,
            )
        return Mixture(
            logits=raw[..., 0], means=raw[..., 1 : 1 + self.n_features],
            log_scales=raw[..., 1 + self.n_features :], min_variance=self.min_variance,
        )

    def loss(self, mixture: Mixture, target: torch.Tensor) -> torch.Tensor:
        """The training criterion, averaged over all leading indices (a scalar).

        ``"mdn"``: mean negative log-likelihood per step (nats, summed over features).
        ``"mse"``: mean squared error of the means, averaged over steps and features (in
        training mode it also updates ``residual_variance``, the per-feature moving average
        of the squared errors that sampling uses as the regression's variance).
        """
        if self.loss_kind == "mse":
            squared = (mixture.means[..., 0, :] - target).square()
            if self.training:
                with torch.no_grad():
                    per_feature = squared.reshape(-1, self.n_features).mean(0)
                    self.residual_variance.lerp_(per_feature.clamp_min(1e-12), 0.05)
            return squared.mean()
        return mixture.nll(target).mean()

    def stepper(self) -> Stepper:
        """A :class:`Stepper` for running this network one step at a time (generation)."""
        return TCNStepper(self) if self.cell == "tcn" else Stepper(self)

    def config(self) -> dict[str, Any]:
        """The constructor arguments, as a plain dict."""
        return dict(
            n_features=self.n_features, hidden_size=self.hidden_size, num_layers=self.num_layers,
            n_components=self.n_components, cell=self.cell, dropout=self.dropout,
            loss=self.loss_kind, min_variance=self.min_variance, bottleneck=self.bottleneck,
            input_noise=self.input_noise,
        )


class Stepper:
    """Runs an LSTM or GRU :class:`SpectralRNN` one step at a time, as fast as the device allows.

    Generation is a long chain of tiny steps, so on a CPU a step costs what its kernel calls
    cost more than what they compute. The stepper therefore makes every step write into
    buffers allocated once by :meth:`prime` (no tensor is created per step) and, for an LSTM,
    does each layer's gates in one matrix product: the layer's input and its previous hidden
    state sit side by side in one row buffer ``[x | h_1 | ... | h_L]`` (layer ``k`` reads
    ``[h_{k-1} | h_k]`` where it lies and writes its new ``h_k`` in place, which is also the
    next layer's input), multiplied by ``[W_ih | W_hh]^T`` stored contiguous, with the gate
    rows reordered ``(i, f, o, g)`` so one ``sigmoid_`` covers three gates. A GRU layer is one
    ``torch.gru_cell`` whose result is copied into its slot. The head (and the bottleneck's
    embedding and projection) are one ``addmm``/``mm`` each on weights stored transposed and
    contiguous. The same code runs on CUDA (the step is then a fixed sequence of kernels on
    fixed buffers, which CUDA graphs can capture).

    Results equal the network's sequence forward to float rounding (the fused gate product
    sums in another order than ``torch.lstm_cell``/cuDNN); they are not bit-identical to it.

    The fused and transposed weights are copies made with the stepper: make a new stepper
    after changing the network's parameters. Steps run without autograd.

    Attributes (after :meth:`prime`):
        input (Tensor): ``(batch, F)``, the next step's input; write it, then :meth:`advance`.
        head (Tensor): ``(batch, C, P)``, the head output of the last step (overwritten by
            every :meth:`advance`).

    Example:
        >>> stepper = net.stepper()
        >>> raw = stepper.prime(x)           # x (batch, time, F): last output (batch, C, P)
        >>> raw = stepper.step(x[:, -1])     # one step, (batch, F) -> (batch, C, P), a new tensor
        >>> stepper.input.copy_(x[:, -1]); stepper.advance()   # the same, in place
    """

    #: :func:`~pvrnn.model.sample.step_function` may ``torch.compile`` its steps.
    compilable = True

    def __init__(self, net: SpectralRNN) -> None:
        self.net = net
        self.lstm = net.cell == "lstm"  # (the step reads no module attribute: fewer guards)
        rnn, h = net.rnn, net.hidden_size
        with torch.no_grad():
            weights = [[getattr(rnn, f"{name}_l{k}").detach()
                        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
                       for k in range(net.num_layers)]
            if net.cell == "lstm":  # gate rows (i, f, g, o) -> (i, f, o, g); [W_ih | W_hh]^T
                order = torch.cat([torch.arange(2 * h), torch.arange(3 * h, 4 * h),
                                   torch.arange(2 * h, 3 * h)]).to(weights[0][0].device)
                weights = [(torch.cat([w_ih, w_hh], 1)[order].t().contiguous(),
                            (b_ih + b_hh)[order]) for w_ih, w_hh, b_ih, b_hh in weights]
            self.weights = weights
            self.embed = (None if net.embed is None else
                          (net.embed.bias.detach(), net.embed.weight.detach().t().contiguous()))
            self.project_t = (None if net.project is None
                              else net.project.weight.detach().t().contiguous())
            self.head_bias = net.head.bias.detach()
            self.head_t = net.head.weight.detach().t().contiguous()
        self.input: torch.Tensor | None = None
        self.head: torch.Tensor | None = None

    def prime(self, x: torch.Tensor, batch: int | None = None) -> torch.Tensor:
        """Run over ``x`` ``(batch, time, F)`` from zeros and set up the step buffers.

        With ``batch``, ``x`` is one sequence ``(1, time, F)`` run once, and its state is
        copied to ``batch`` streams.

        Returns:
            Tensor: the last head output ``(batch, C, P)`` (a copy of :attr:`head`).
        """
        net = self.net
        with torch.no_grad():
            raw, state = net.raw(x)
            n = raw.shape[0] if batch is None else batch
            h, layers = net.hidden_size, net.num_layers
            width = net.n_features if net.embed is None else net.bottleneck
            options = dict(dtype=raw.dtype, device=raw.device)
            row = torch.zeros(n, width + layers * h, **options)  # [x | h_1 | ... | h_L]
            hidden = [row[:, width + k * h : width + (k + 1) * h] for k in range(layers)]
            for k in range(layers):
                hidden[k].copy_((state[0] if net.cell == "lstm" else state)[k])
            self.x = row[:, :width]
            self.input = self.x if net.embed is None else torch.zeros(n, net.n_features,
                                                                      **options)
            self.last = hidden[-1]
            if net.cell == "lstm":
                cells = state[1].expand(-1, n, -1).contiguous()  # (L, batch, H)
                gates = torch.empty(layers, n, 4 * h, **options)
                self.layers = [
                    (row[:, width + (k - 1) * h if k else 0 : width + (k + 1) * h], w, b,
                     gates[k], gates[k, :, : 3 * h], gates[k, :, 3 * h :],
                     gates[k, :, :h], gates[k, :, h : 2 * h], gates[k, :, 2 * h : 3 * h],
                     cells[k], hidden[k])
                    for k, (w, b) in enumerate(self.weights)
                ]
            else:
                below = [self.x] + hidden[:-1]
                self.layers = [(below[k], hidden[k], w) for k, w in enumerate(self.weights)]
            self.projected = (None if self.project_t is None
                              else torch.empty(n, self.project_t.shape[1], **options))
            self.head_flat = torch.empty(n, self.head_t.shape[1], **options)
            self.head = self.head_flat.view(n, net.n_components, -1)
            self.head.copy_(raw[:, -1])
        return self.head.clone()

    def advance(self) -> torch.Tensor:
        """One step from :attr:`input`, in place; returns :attr:`head` ``(batch, C, P)``."""
        # Dynamo refuses out= into strided views (the slots of the row buffer at batch > 1):
        # when compiling, the same values are copied in instead.
        compiling = torch.compiler.is_compiling()
        if self.embed is not None:
            if compiling:
                self.x.copy_(torch.addmm(self.embed[0], self.input, self.embed[1]))
            else:
                torch.addmm(self.embed[0], self.input, self.embed[1], out=self.x)
        if self.lstm:
            for xh, w, b, gates, ifo, g, i, f, o, c, h in self.layers:
                torch.addmm(b, xh, w, out=gates)
                ifo.sigmoid_()
                g.tanh_()
                c.mul_(f).addcmul_(i, g)
                if compiling:
                    h.copy_(torch.tanh(c)).mul_(o)
                else:
                    torch.tanh(c, out=h).mul_(o)
        else:
            for x, h, weights in self.layers:
                h.copy_(torch.gru_cell(x, h, *weights))
        hidden = self.last
        if self.projected is not None:  # low rank: two thin products, not one wide one
            hidden = torch.mm(hidden, self.project_t, out=self.projected)
        torch.addmm(self.head_bias, hidden, self.head_t, out=self.head_flat)
        return self.head

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """One step on ``x`` ``(batch, F)``; returns the head output ``(batch, C, P)`` (new)."""
        self.input.copy_(x)
        return self.advance().clone()

"""The one sampler: draws from diagonal Gaussian mixtures, alone or step by step in generation.

:class:`Picker` holds the sampling arithmetic once. :meth:`pvrnn.Mixture.sample` runs it on a
mixture's tensors (through :meth:`Sampler.pick`); :meth:`Sampler.generate` runs it on the raw
head output of every generation step, so the statistical tests of one cover the other.

Where a generation step's time goes (CPU, one thread, 2-core Xeon with AVX-512, process time,
``benchmarks/bench_model.py --only-steps``). The floor is one product per weight matrix of the
network, in order, each weight read once. Clarinet preset (2x100 LSTM, 40 features, 3
components): floor 17 us; a step 30 us (network 19 us, of which the two LSTM layers 16,
sampling 6 us, the loop, draws and row copy the rest). Default network (2x256 LSTM,
2050 features, bottleneck 128): floor 250 us (its 7 MB of weights do not stay in the 2 MB
L2 cache; each product timed alone, cache-hot, sums to 120 us); a step 330 us (LSTM layers
146 us, embedding, projection and head 150 us, sampling 6 us, draws 5 us). At batch 64 the
products run at the core's peak (about 190 GFLOP/s), so the step is bound by arithmetic: 2x
its floor for both networks, where elementwise kernels and, for the default network, the
normal draws (torch's CPU normal costs 5.3 ns a value: 0.7 ms a step for 64 x 2050) take the
rest. Batch 64 then gives 8x (clarinet) and 7x (default) the one-stream throughput; even at
its floor it could give only 17x and 15x.

Variance semantics (the original sound-rnn mixed them up): component ``c``'s variance in
feature ``f`` is ``exp(2 * log_scales) + min_variance``; a variance scale ``s`` multiplies that
*variance*, i.e. the standard deviation by ``sqrt(s)``. The scale arrives as ``std_scale =
sqrt(s)``, already broadcast to the draws, so it can differ per step, per stream, and (by
giving a last dim of ``F``) per feature.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any, Callable

import torch

from ..errors import check_choice, check_positive

if TYPE_CHECKING:
    from .network import SpectralRNN

__all__ = ["Sampler", "Picker", "COMPONENTS", "step_function"]

log = logging.getLogger("pvrnn")

#: How a component is chosen: drawn from the (tempered) weights, or the heaviest one.
COMPONENTS = ("sample", "most_likely")

#: Generation steps whose random draws are made at once (bounds memory for long outputs).
CHUNK = 256


def gumbel_noise(uniform: torch.Tensor) -> torch.Tensor:
    """Standard Gumbel noise from uniform ``[0, 1)`` draws (clamped away from 0 and 1)."""
    tiny = torch.finfo(uniform.dtype).tiny
    eps = torch.finfo(uniform.dtype).eps
    return -torch.log(-torch.log(uniform.clamp(tiny, 1.0 - eps)))


def nearest_continuation(pool: torch.Tensor, previous: torch.Tensor,
                         current: torch.Tensor) -> torch.Tensor:
    """The frame of ``pool`` ``(M, F)`` whose predecessor and itself are nearest to
    ``(previous, current)`` ``(batch, F)`` each: ``(batch, F)`` rows of ``pool[1:]``."""
    pairs = torch.cat([pool[:-1], pool[1:]], dim=-1)  # (M - 1, 2F)
    query = torch.cat([previous, current], dim=-1)  # (batch, 2F)
    distance = pairs.square().sum(-1) - 2 * query @ pairs.T  # |q|^2 is the same for all
    return pool[1:][distance.argmin(-1)]


class Sampler:
    """Draws one feature vector per leading index from mixtures of ``C`` diagonal Gaussians.

    A component is chosen by the Gumbel-max trick (``argmax(logits + T g)`` is a draw from
    ``softmax(logits / T)``), or as the heaviest; then ``mean + std * noise``.

    Args:
        n_components (int): ``C``.
        n_features (int): ``F``.
        min_variance (float): variance floor added to every component's variance (feature
            units), ``std = hypot(exp(log_scale), sqrt(min_variance))``.
        std (Tensor, optional): ``(F,)`` a fixed standard deviation of every component (a
            regression's residual std); then the parameters hold means only.
        temperature (float): > 0, sharpens (< 1) or flattens (> 1) the component weights.
        component (str): ``"sample"`` draws the component; ``"most_likely"`` takes the heaviest.
        generator (torch.Generator, optional): on ``device``, for reproducible draws.
        device: where the draws are made (default: the generator's, else the CPU).

    Raises:
        PvrnnError: on a non-positive ``temperature`` or an unknown ``component``.

    Example:
        >>> sampler = Sampler(3, 40, min_variance=1e-6, generator=torch.Generator())
        >>> noise, g = sampler.draw((8,), std_scale=0.5)       # (8, 40), (8, 3)
        >>> y = sampler.pick(logits, params, g, noise)          # params (8, 3, 80) -> (8, 40)
    """

    def __init__(
        self,
        n_components: int,
        n_features: int,
        *,
        min_variance: float = 0.0,
        std: torch.Tensor | None = None,
        temperature: float = 1.0,
        component: str = "sample",
        generator: torch.Generator | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        self.n_components = int(n_components)
        self.n_features = int(n_features)
        self.temperature = check_positive("temperature", temperature)
        self.component = check_choice("component", component, COMPONENTS)
        self.generator = generator
        if device is None:
            device = generator.device if generator is not None else "cpu"
        self.device = torch.device(device)
        self.std = std
        self.floor_std = (torch.tensor(min_variance ** 0.5, device=self.device)
                          if min_variance and std is None else None)
        self.draws_components = component == "sample" and self.n_components > 1

    @classmethod
    def for_network(cls, net: SpectralRNN, **options) -> Sampler:
        """The sampler of a :class:`~pvrnn.SpectralRNN`'s mixtures (``options`` as above)."""
        device = next(net.parameters()).device
        if net.loss_kind == "mse":  # the regression's mean plus noise of its residuals' size
            return cls(1, net.n_features, std=net.residual_variance.sqrt(), device=device,
                       **options)
        return cls(net.n_components, net.n_features, min_variance=net.min_variance,
                   device=device, **options)

    def draw(
        self,
        shape: tuple[int, ...],
        std_scale: float | torch.Tensor = 1.0,
        dtype: torch.dtype = torch.float32,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The random draws for ``shape`` leading indices.

        Args:
            shape: the leading dims ``(...)``.
            std_scale: ``sqrt(variance_scale)``, broadcasting against ``(..., F)``.
            dtype: of the draws.

        Returns:
            tuple: ``noise`` ``(..., F)`` (standard normal times ``std_scale``) and the Gumbel
            noise times the temperature ``(..., C)``, or ``None`` when no component is drawn.
        """
        options = dict(dtype=dtype, device=self.device, generator=self.generator)
        noise = torch.randn(*shape, self.n_features, **options).mul_(std_scale)
        g = None
        if self.draws_components:
            uniform = torch.rand(*shape, self.n_components, **options)
            g = gumbel_noise(uniform).mul_(self.temperature)
        return noise, g

    def pick(
        self,
        logits: torch.Tensor | None,
        params: torch.Tensor,
        gumbel: torch.Tensor | None,
        noise: torch.Tensor,
        out: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The sampling arithmetic, with the draws given (once; see :class:`Picker`).

        Args:
            logits: ``(..., C)`` (unused, may be ``None``, when ``C == 1``).
            params: ``(..., C, 2F)``: ``[means | log_scales]`` per component; ``(..., C, F)``
                means when the sampler has a fixed ``std``.
            gumbel: ``(..., C)`` from :meth:`draw`, or ``None`` for the heaviest component.
            noise: ``(..., F)`` from :meth:`draw`.
            out: optional ``(..., F)`` tensor to write into.

        Returns:
            Tensor: ``mean_k + std_k * noise`` with ``k`` the chosen component, ``(..., F)``.
        """
        if out is None:
            out = torch.empty(params.shape[:-2] + (self.n_features,), dtype=params.dtype,
                              device=params.device)
        return Picker(self, logits, params)(gumbel, noise, out)

    def generate(
        self,
        net: SpectralRNN,
        prime: torch.Tensor,
        n_steps: int,
        batch: int,
        std_scale: torch.Tensor,
        reset_features: torch.Tensor | None = None,
        reset_every: int | None = None,
        progress: bool = False,
        reset_pool: torch.Tensor | None = None,
        compiled: bool | None = None,
    ) -> torch.Tensor:
        """Prime ``net``, then sample ``n_steps`` feature rows, one network step at a time.

        The output is preallocated, random draws are made in chunks of :data:`CHUNK` steps,
        and each step is :meth:`Stepper.advance <pvrnn.model.network.Stepper.advance>` (the
        network, in place on buffers made once) and a :class:`Picker` call (the sampling
        arithmetic, in place) writing the drawn row where the next step reads its input, then
        one copy into the output: no tensor is created per step and nothing in the loop reads a
        value back to the host. With ``compiled`` (see :func:`step_function`) the two run as
        one ``torch.compile``-d function.

        Args:
            net: the network (this sampler is :meth:`for_network` of it).
            prime: ``(P, F)`` features to prime on (one sequence, copied to every stream).
            n_steps: rows to generate, >= 1.
            batch: parallel streams.
            std_scale: ``(n_steps, batch or 1, 1 or F)`` square roots of the variance scale.
            reset_features: ``(batch, n_steps // reset_every, F)`` rows that replace every
                ``reset_every``-th generated row (and are the network's next input).
            reset_every: steps between resets, or ``None``.
            reset_pool: ``(M, F)`` consecutive frames of a sound to reset to instead (absolute
                features): at a reset the generated row is replaced by the pool frame whose
                predecessor and itself are nearest (Euclidean) to the last two generated rows,
                so the reset continues where the sound is (same level, same point and
                direction of a vibrato) instead of cutting it.
            progress: show a tqdm bar on stderr.
            compiled: run the step compiled (``True``), eager (``False``), or as the policy
                says (``None``: ``PVRNN_COMPILE``, :func:`pvrnn.dsp.kernels.compile_mode`).

        Returns:
            Tensor: ``(batch, n_steps, F)`` float32; row ``i`` is step ``i + 1`` after the
            prime.
        """
        from tqdm import tqdm  # text bars on stderr: no widget warnings in notebooks

        offset = 1 if self.std is None else 0  # raw head: [logit | means | log_scales]
        out = torch.empty(n_steps, batch, self.n_features, device=self.device)
        rows = out.unbind(0)
        bar = tqdm(total=n_steps, disable=not progress, file=sys.stderr, desc="generate",
                   unit="frame", leave=False)
        was_training = net.training
        net.eval()
        try:
            with torch.inference_mode():
                stepper = net.stepper()
                stepper.prime(prime.to(torch.float32).unsqueeze(0), batch)
                head, x = stepper.head, stepper.input  # buffers every step reuses
                picker = Picker(self, head[..., 0], head[..., offset:])
                step = step_function(stepper, picker, compiled)
                noise = gumbel = ()
                for i in range(n_steps):
                    j = i % CHUNK
                    if j == 0:
                        size = min(CHUNK, n_steps - i)
                        noise, g = self.draw((size, batch), std_scale[i : i + size])
                        noise = noise.unbind(0)
                        gumbel = (None,) * size if g is None else g.unbind(0)
                        if i:
                            bar.update(CHUNK)
                    if i:
                        step(gumbel[j], noise[j])  # the network, then the draw into x
                    else:
                        picker(gumbel[0], noise[0], x)
                    if reset_every is not None and (i + 1) % reset_every == 0:
                        if reset_pool is None:
                            x.copy_(reset_features[:, (i + 1) // reset_every - 1])
                        else:
                            previous = rows[i - 1] if i else x  # the first: itself
                            x.copy_(nearest_continuation(reset_pool, previous, x))
                    rows[i].copy_(x)
                bar.update(n_steps - bar.n)
        finally:
            bar.close()
            net.train(was_training)
        return out.transpose(0, 1)


class Picker:
    """:meth:`Sampler.pick` bound to fixed tensors, with its scratch memory allocated once.

    The generation loop reads every step's mixture from the same head buffer
    (:attr:`pvrnn.model.network.Stepper.head`), so the views into it, the component index and
    the chosen parameters are made here once and each call is a fixed sequence of ``out=``
    kernels: ``add`` and ``argmax`` (the Gumbel-max pick), ``gather``, ``exp``, ``hypot`` (the
    variance floor) and ``addcmul``, the operations the sampler always made, in the same
    order (the same draws give bit-identical rows). :meth:`Sampler.pick` (and so
    :meth:`pvrnn.Mixture.sample`) runs a one-off Picker: one implementation for both.

    Args:
        sampler (Sampler): whose settings apply.
        logits: ``(..., C)`` (may be ``None`` when ``C == 1``), read at every call.
        params: ``(..., C, 2F)`` (``(..., C, F)`` with a fixed ``std``), read at every call.

    Example:
        >>> picker = Picker(sampler, head[..., 0], head[..., 1:])
        >>> picker(gumbel, noise, out)       # (batch, C), (batch, F) -> out (batch, F)
    """

    def __init__(self, sampler: Sampler, logits: torch.Tensor | None,
                 params: torch.Tensor) -> None:
        self.sampler = sampler
        self.logits, self.params = logits, params
        lead, n_features = params.shape[:-2], sampler.n_features
        options = dict(dtype=params.dtype, device=params.device)
        if sampler.n_components == 1:
            chosen = params[..., 0, :]
        else:
            self.scores = torch.empty(lead + (sampler.n_components,), **options)
            self.index = torch.empty(lead + (1,), dtype=torch.long, device=params.device)
            self.spread = self.index.unsqueeze(-1).expand(*lead, 1, params.shape[-1])
            self.selected = torch.empty(lead + (1, params.shape[-1]), **options)
            chosen = self.selected.squeeze(-2)
        self.means = chosen[..., :n_features]
        self.log_scales = chosen[..., n_features:]
        self.std = None if sampler.std is not None else torch.empty(lead + (n_features,),
                                                                    **options)

    def __call__(self, gumbel: torch.Tensor | None, noise: torch.Tensor,
                 out: torch.Tensor) -> torch.Tensor:
        """Draw into ``out`` ``(..., F)`` given the Gumbel noise ``(..., C)`` (or ``None``:
        the heaviest component) and the normal noise ``(..., F)``; returns ``out``."""
        sampler = self.sampler
        if sampler.n_components > 1:
            scores = self.logits
            if gumbel is not None:
                scores = torch.add(self.logits, gumbel, out=self.scores)
            torch.argmax(scores, -1, keepdim=True, out=self.index)
            torch.gather(self.params, -2, self.spread, out=self.selected)
        if sampler.std is not None:
            std = sampler.std
        else:
            std = torch.exp(self.log_scales, out=self.std)
            if sampler.floor_std is not None:  # sqrt(exp(2 log_scale) + min_variance)
                std = torch.hypot(std, sampler.floor_std, out=std)
        if torch.compiler.is_compiling():  # dynamo refuses out= into a strided view
            return out.copy_(torch.addcmul(self.means, std, noise))
        return torch.addcmul(self.means, std, noise, out=out)


def advance_and_pick(stepper: Any, picker: Picker, gumbel: torch.Tensor | None,
                     noise: torch.Tensor) -> None:
    """One generation step in place: the network from ``stepper.input`` to ``stepper.head``,
    then the draw from the head into ``stepper.input`` (the next step's input)."""
    stepper.advance()
    picker(gumbel, noise, stepper.input)


def tensors_in(value: Any) -> list[torch.Tensor]:
    """The tensors in ``value``, a tensor or nested lists and tuples (other items skipped)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in tensors_in(item)]
    return []


_BROKEN: dict[str, str] = {}  # device type -> why compiling the step failed there
_COMPILED: dict[str, Callable] = {}


def step_function(stepper: Any, picker: Picker, compiled: bool | None = None) -> Callable:
    """:func:`advance_and_pick` for ``stepper`` and ``picker``: a callable of ``(gumbel,
    noise)``, eager or compiled.

    Compiled (``compiled=True``; with ``None``, on CUDA when
    :func:`pvrnn.dsp.kernels.compile_mode` is ``"on"``, i.e. ``PVRNN_COMPILE=1``; LSTM and
    GRU steppers only): the whole step as one ``torch.compile``-d function (``fullgraph``,
    static shapes; its buffers are arguments, so another stepper of the same shapes reuses
    the compiled code). On CUDA with ``mode="reduce-overhead"``, which replays the step as a
    CUDA graph (the buffers are marked static, so the in-place updates stay in the graph);
    this path has not been measured on a GPU.

    On a CPU the default is eager whatever ``PVRNN_COMPILE`` says: a compiled call costs
    about 20 us of guards and wrapper before any work, and the compiled step measured 3x
    slower than the eager one for the clarinet preset and no faster for the default network
    (``benchmarks/bench_model.py --only-steps``); compiling takes seconds. If compiling
    fails for any reason, the eager step runs from then on for that device type, silently
    (the reason is logged at DEBUG level on ``pvrnn``).
    """
    from ..dsp.kernels import compile_mode

    device_type = stepper.head.device.type
    use = compile_mode() == "on" and device_type == "cuda" if compiled is None else compiled
    compilable = getattr(stepper, "compilable", False)  # not the TCN's host-side ring positions
    if not (use and compilable) or device_type in _BROKEN or not hasattr(torch, "compile"):
        return lambda gumbel, noise: advance_and_pick(stepper, picker, gumbel, noise)
    if device_type == "cuda":  # the step's buffers live for the whole loop: graph-static
        for tensor in tensors_in([*vars(stepper).values(), *vars(picker).values()]):
            torch._dynamo.mark_static_address(tensor)
    if device_type not in _COMPILED:
        mode = "reduce-overhead" if device_type == "cuda" else None
        _COMPILED[device_type] = torch.compile(advance_and_pick, fullgraph=True, dynamic=False,
                                               mode=mode)
    function = _COMPILED[device_type]
    state = {"broken": False}

    def step(gumbel: torch.Tensor | None, noise: torch.Tensor) -> None:
        if not state["broken"]:
            try:
                return function(stepper, picker, gumbel, noise)
            except Exception as exc:  # a compiler error, a missing toolchain, a platform
                _BROKEN[device_type] = f"{type(exc).__name__}: {exc}"
                log.debug("pvrnn: the compiled generation step failed on %s, running eager: "
                          "%s", device_type, _BROKEN[device_type])
                state["broken"] = True
        return advance_and_pick(stepper, picker, gumbel, noise)

    return step

"""The one sampler: draws from diagonal Gaussian mixtures, alone or step by step in generation.

:class:`Sampler` holds the sampling arithmetic once. :meth:`pvrnn.Mixture.sample` calls it on a
mixture's tensors; :meth:`Sampler.generate` calls the same :meth:`Sampler.pick` on the raw head
output of every generation step, so the statistical tests of one cover the other.

Variance semantics (the original sound-rnn mixed them up): component ``c``'s variance in
feature ``f`` is ``exp(2 * log_scales) + min_variance``; a variance scale ``s`` multiplies that
*variance*, i.e. the standard deviation by ``sqrt(s)``. The scale arrives as ``std_scale =
sqrt(s)``, already broadcast to the draws, so it can differ per step, per stream, and (by
giving a last dim of ``F``) per feature.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import torch

from ..errors import check_choice, check_positive

if TYPE_CHECKING:
    from .network import SpectralRNN

__all__ = ["Sampler", "COMPONENTS"]

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
        """The sampling arithmetic, with the draws given (the generation loop's hot path).

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
        if self.n_components == 1:
            params = params[..., 0, :]
        else:
            scores = logits if gumbel is None else logits + gumbel
            index = scores.argmax(-1, keepdim=True).unsqueeze(-1)  # (..., 1, 1)
            index = index.expand(*params.shape[:-2], 1, params.shape[-1])
            params = params.gather(-2, index).squeeze(-2)  # (..., 2F)
        if self.std is not None:
            return torch.addcmul(params, self.std, noise, out=out)
        std = torch.exp(params[..., self.n_features :])
        if self.floor_std is not None:  # sqrt(exp(2 log_scale) + min_variance)
            std = torch.hypot(std, self.floor_std)
        return torch.addcmul(params[..., : self.n_features], std, noise, out=out)

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
    ) -> torch.Tensor:
        """Prime ``net``, then sample ``n_steps`` feature rows, one network step at a time.

        The output is preallocated, random draws are made in chunks of :data:`CHUNK` steps,
        each step is one recurrent call (:class:`~pvrnn.model.network.Stepper`), one matrix
        product for the head and :meth:`pick`, and nothing in the loop reads a value back to
        the host.

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

        Returns:
            Tensor: ``(batch, n_steps, F)`` float32; row ``i`` is step ``i + 1`` after the
            prime.
        """
        from tqdm import tqdm  # text bars on stderr: no widget warnings in notebooks

        offset = 1 if self.std is None else 0  # raw head: [logit | means | log_scales]
        out = torch.empty(n_steps, batch, self.n_features, device=self.device)
        bar = tqdm(total=n_steps, disable=not progress, file=sys.stderr, desc="generate",
                   unit="frame", leave=False)
        was_training = net.training
        net.eval()
        try:
            with torch.inference_mode():
                stepper = net.stepper()
                last = stepper.prime(prime.to(torch.float32).unsqueeze(0), batch)
                noise = g = None
                for i in range(n_steps):
                    j = i % CHUNK
                    if j == 0:
                        size = min(CHUNK, n_steps - i)
                        noise, g = self.draw((size, batch), std_scale[i : i + size])
                        if i:
                            bar.update(CHUNK)
                    y = self.pick(last[..., 0], last[..., offset:], None if g is None else g[j],
                                  noise[j], out=out[i])
                    if reset_every is not None and (i + 1) % reset_every == 0:
                        if reset_pool is None:
                            y.copy_(reset_features[:, (i + 1) // reset_every - 1])
                        else:
                            y.copy_(nearest_continuation(reset_pool, out[max(i - 1, 0)], y))
                    if i + 1 < n_steps:
                        last = stepper.step(y)
                bar.update(n_steps - bar.n)
        finally:
            bar.close()
            net.train(was_training)
        return out.transpose(0, 1)

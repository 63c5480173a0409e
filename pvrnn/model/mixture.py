"""Gaussian mixtures with diagonal covariance: the output distribution of the network.

A :class:`Mixture` holds, for every leading index (batch, frame), ``C`` components over ``F``
features: mixture logits, means and log standard deviations. :meth:`Mixture.nll` is the
training loss, computed in log space (``log_softmax`` + ``logsumexp``) so that it stays finite
and has finite gradients however far a target lies from every component. :meth:`Mixture.sample`
draws from it with the one sampler (:class:`~pvrnn.model.sample.Sampler`), the one generation uses.

Variance semantics (the original sound-rnn mixed them up): ``log_scales`` are log *standard
deviations*; the variance of component ``c`` in feature ``f`` is ``exp(2 * log_scales) +
min_variance``; ``sample(variance_scale=s)`` multiplies that *variance* by ``s``, i.e. the
standard deviation by ``sqrt(s)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch

from ..errors import check_positive, fail
from .sample import Sampler

__all__ = ["Mixture", "DEFAULT_MIN_VARIANCE"]

#: Variance added to every component, in the units of the (normalised) features: the model
#: can never claim to be more precise than a standard deviation of 1e-3 of the data's.
DEFAULT_MIN_VARIANCE = 1e-6

_LOG_2PI = math.log(2.0 * math.pi)


@dataclass(frozen=True)
class Mixture:
    """A mixture of ``C`` diagonal Gaussians over ``F`` features, per leading index.

    Attributes:
        logits (Tensor): unnormalised log mixture weights, ``(..., C)``.
        means (Tensor): component means, ``(..., C, F)``.
        log_scales (Tensor): log standard deviations, ``(..., C, F)`` (before the floor).
        min_variance (float): variance floor added to every component's variance,
            ``exp(2 * log_scales) + min_variance``, so variances cannot collapse to zero
            (default :data:`DEFAULT_MIN_VARIANCE`; 0 disables it).

    Example:
        >>> mixture, state = net(x)                    # from a pvrnn.SpectralRNN
        >>> loss = mixture.nll(target).mean()          # target (..., F)
        >>> y = mixture.sample(variance_scale=0.1, generator=torch.Generator().manual_seed(0))
    """

    logits: torch.Tensor
    means: torch.Tensor
    log_scales: torch.Tensor
    min_variance: float = DEFAULT_MIN_VARIANCE

    def __post_init__(self) -> None:
        for name in ("logits", "means", "log_scales"):
            if not isinstance(getattr(self, name), torch.Tensor):
                raise fail(name, getattr(self, name), "a tensor")
        if self.means.dim() < 2:
            raise fail("means", self.means, "a tensor (..., C, F)")
        if self.log_scales.shape != self.means.shape:
            raise fail("log_scales", self.log_scales, f"the shape of means {tuple(self.shape)}")
        if self.logits.shape != self.means.shape[:-1]:
            raise fail("logits", self.logits, f"shape {tuple(self.means.shape[:-1])} (..., C)")
        if not (self.min_variance >= 0 and math.isfinite(self.min_variance)):
            raise fail("min_variance", self.min_variance, "a finite number >= 0")

    # -- shape ----------------------------------------------------------------------------------
    @property
    def shape(self) -> torch.Size:
        """``(..., C, F)``."""
        return self.means.shape

    @property
    def batch_shape(self) -> torch.Size:
        """The leading dims ``(...)``."""
        return self.means.shape[:-2]

    @property
    def n_components(self) -> int:
        return self.means.shape[-2]

    @property
    def n_features(self) -> int:
        return self.means.shape[-1]

    def to(self, *args: Any, **kwargs: Any) -> Mixture:
        """Move/cast every tensor like :meth:`torch.Tensor.to`; returns a new Mixture."""
        return replace(
            self,
            logits=self.logits.to(*args, **kwargs),
            means=self.means.to(*args, **kwargs),
            log_scales=self.log_scales.to(*args, **kwargs),
        )

    def detach(self) -> Mixture:
        return replace(self, logits=self.logits.detach(), means=self.means.detach(),
                       log_scales=self.log_scales.detach())

    # -- moments ----------------------------------------------------------------------------------
    @property
    def weights(self) -> torch.Tensor:
        """Mixture weights, ``(..., C)``, summing to one."""
        return torch.softmax(self.logits, dim=-1)

    @property
    def log_stds(self) -> torch.Tensor:
        """Log standard deviations with the floor, ``0.5 * log(exp(2 log_scales) + floor)``."""
        if self.min_variance == 0:
            return self.log_scales
        return 0.5 * torch.logaddexp(
            2 * self.log_scales, torch.tensor(math.log(self.min_variance),
                                              dtype=self.log_scales.dtype,
                                              device=self.log_scales.device)
        )

    @property
    def scales(self) -> torch.Tensor:
        """Standard deviations with the floor, ``(..., C, F)``."""
        return self.log_stds.exp()

    @property
    def variances(self) -> torch.Tensor:
        """``exp(2 * log_scales) + min_variance``, ``(..., C, F)``."""
        return (2 * self.log_stds).exp()

    @property
    def mean(self) -> torch.Tensor:
        """The mixture's mean, ``(..., F)``."""
        return (self.weights.unsqueeze(-1) * self.means).sum(-2)

    @property
    def variance(self) -> torch.Tensor:
        """The mixture's variance per feature (within- plus between-component), ``(..., F)``."""
        w = self.weights.unsqueeze(-1)
        mean = (w * self.means).sum(-2, keepdim=True)
        return (w * (self.variances + (self.means - mean).square())).sum(-2)

    # -- likelihood ----------------------------------------------------------------------------
    def log_prob(self, target: torch.Tensor) -> torch.Tensor:
        """Log density of ``target`` ``(..., F)`` under the mixture, ``(...)``.

        ``log sum_c w_c prod_f N(x_f; mu_cf, sigma_cf)``, evaluated as ``logsumexp`` over
        components of ``log_softmax(logits) + sum_f log N``: no probability is ever formed, so
        a target 1e4 standard deviations away gives a large but finite value with finite
        gradients.
        """
        if not isinstance(target, torch.Tensor) or target.shape[-1:] != self.shape[-1:]:
            raise fail("target", target, f"a tensor (..., F={self.n_features})")
        log_std = self.log_stds
        z = (target.unsqueeze(-2) - self.means) * torch.exp(-log_std)  # (..., C, F)
        per_component = -0.5 * z.square() - log_std - 0.5 * _LOG_2PI
        joint = per_component.sum(-1) + torch.log_softmax(self.logits, dim=-1)  # (..., C)
        return torch.logsumexp(joint, dim=-1)

    def nll(self, target: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood of ``target`` ``(..., F)``, per leading index ``(...)``.

        Average it (``.mean()``) for a per-frame loss. See :meth:`log_prob`.

        Raises:
            PvrnnError: when ``target``'s last dim is not ``F``.
        """
        return -self.log_prob(target)

    # -- sampling --------------------------------------------------------------------------------
    def sample(
        self,
        variance_scale: float | torch.Tensor = 1.0,
        temperature: float = 1.0,
        component: str = "sample",
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Draw one sample per leading index, ``(..., F)``.

        Args:
            variance_scale (float or Tensor): multiplies every component's *variance* (the
                standard deviation by its square root); ``0`` returns the chosen component's
                mean. A tensor broadcasts against ``(...)`` (one value per leading index).
            temperature (float): > 0; components are drawn from ``softmax(logits /
                temperature)``: below 1 favours the likelier components, above 1 flattens.
            component (str): ``"sample"`` draws the component (default); ``"most_likely"``
                takes the heaviest one, as the original sound-rnn did.
            generator (torch.Generator, optional): on the mixture's device, for reproducible
                draws.

        Returns:
            Tensor: ``(..., F)`` samples, in the dtype and on the device of ``means``.

        Raises:
            PvrnnError: on a negative or non-finite ``variance_scale``, a non-positive
                ``temperature`` or an unknown ``component``.
        """
        if isinstance(variance_scale, torch.Tensor):
            scale = variance_scale.to(device=self.means.device, dtype=self.means.dtype)
            if not bool(torch.isfinite(scale).all() & (scale >= 0).all()):
                raise fail("variance_scale", variance_scale, "finite values >= 0")
            std_scale = scale.sqrt().unsqueeze(-1)
        else:
            std_scale = math.sqrt(check_positive("variance_scale", variance_scale,
                                                 allow_zero=True))
        sampler = Sampler(self.n_components, self.n_features, min_variance=self.min_variance,
                          temperature=temperature, component=component, generator=generator,
                          device=self.means.device)
        noise, gumbel = sampler.draw(self.batch_shape, std_scale, dtype=self.means.dtype)
        params = torch.cat([self.means, self.log_scales], dim=-1)  # (..., C, 2F)
        return sampler.pick(self.logits, params, gumbel, noise)

"""Sample-level baselines, for comparison only (not part of the pvrnn API).

Two small networks that predict the waveform one sample at a time through a 256-way softmax
over 8-bit mu-law values, as the sample-level models of the 2016-2017 literature did:

- :class:`~pvrnn.baselines.wavenet.SampleWaveNet`: a WaveNet-style dilated causal stack
  (the :class:`~pvrnn.model.tcn.TemporalConvNet` of ``cell="tcn"``, on sample embeddings);
- :class:`~pvrnn.baselines.samplernn.SampleRNN`: a two-tier SampleRNN (a GRU over frames of
  samples conditioning a per-sample MLP).

:func:`~pvrnn.baselines.train.fit_samples` trains either on one sound (random crops, Adam,
cross-entropy in nats per sample; a uniform guess scores ``log 256 = 5.545``) and
:func:`~pvrnn.baselines.train.generate_samples` plays it, one sample per step.
``benchmarks/bench_backbones.py`` compares them with the frame models on the same sounds.
"""

from __future__ import annotations

from .mulaw import mu_law_decode, mu_law_encode
from .samplernn import SampleRNN
from .train import fit_samples, generate_samples
from .wavenet import SampleWaveNet

__all__ = ["mu_law_encode", "mu_law_decode", "SampleWaveNet", "SampleRNN", "fit_samples",
           "generate_samples"]

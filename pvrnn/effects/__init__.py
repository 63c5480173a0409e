"""Sound-design effects on audio: time-stretch, pitch-shift, cross-synthesis.

- :mod:`~pvrnn.effects.stretch`: the phase-locked time-stretch engine (:func:`time_stretch`),
  built from :mod:`~pvrnn.effects.timemap` (where each frame reads),
  :mod:`~pvrnn.effects.onsets` (attacks), :mod:`~pvrnn.effects.phaselock` (peaks and their
  rotations) and :mod:`~pvrnn.effects.spectra` (settings, windowed spectra).
- :mod:`~pvrnn.effects.pitch`: :func:`pitch_shift` (stretch, then resample).
- :mod:`~pvrnn.effects.cross`: :func:`cross_synthesize`, on blocks
  (:class:`~pvrnn.effects.cross.CrossStream`, over :mod:`pvrnn.dsp.vocoder_stream`).
- :mod:`~pvrnn.effects.engine`: the streaming engine all of them run;
  :mod:`~pvrnn.effects.streaming`: :class:`Stretcher` (blocks in, blocks out).
"""

from .cross import cross_synthesize
from .onsets import detect_onsets
from .pitch import pitch_shift
from .streaming import Stretcher
from .stretch import time_stretch

__all__ = ["time_stretch", "pitch_shift", "cross_synthesize", "detect_onsets", "Stretcher"]

"""pvrnn: phase-vocoder spectral synthesis with recurrent mixture-density networks."""

from . import examples, metrics
from .dsp.frames import FrameDeltas, Frames
from .dsp.vocoder import PhaseVocoder
from .effects import Stretcher, cross_synthesize, pitch_shift, time_stretch
from .errors import PvrnnError, PvrnnWarning
from .io import load_audio, save_audio
from .model.codec import FrameCodec
from .model.mixture import Mixture
from .model.network import SpectralRNN
from .model.sound_model import SoundModel, SoundModelConfig

__version__ = "0.1.0"

__all__ = [
    "PvrnnError",
    "PvrnnWarning",
    "Frames",
    "FrameDeltas",
    "PhaseVocoder",
    "FrameCodec",
    "Mixture",
    "SpectralRNN",
    "SoundModel",
    "SoundModelConfig",
    "load_audio",
    "save_audio",
    "time_stretch",
    "pitch_shift",
    "cross_synthesize",
    "Stretcher",
    "examples",
    "metrics",
    "__version__",
]

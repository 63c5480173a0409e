"""pvrnn: phase-vocoder spectral synthesis with recurrent mixture-density networks."""

from . import examples, metrics
from .codec import FrameCodec
from .errors import PvrnnError, PvrnnWarning
from .frames import FrameDeltas, Frames
from .io import load_audio, save_audio
from .mixture import Mixture
from .model import SoundModel, SoundModelConfig
from .network import SpectralRNN
from .transforms import cross_synthesize, pitch_shift, time_stretch
from .vocoder import PhaseVocoder

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
    "examples",
    "metrics",
    "__version__",
]

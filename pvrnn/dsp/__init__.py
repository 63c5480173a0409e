"""Signal processing: frames, the phase vocoder, its kernels, windows, overlap-add, resampling."""

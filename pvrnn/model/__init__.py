"""The learning side: frame codec, mixture density, recurrent network, training, sampling, files."""

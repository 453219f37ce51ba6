"""Bundled model files (data only): the default model and the list of downloadable models."""

"""Split protocols (split files), fold loading, normalisation statistics and the window feed."""

"""Raw part files to cleaned, windowed HDF5 shards: readers, cleaning, shards, ingest, synth."""

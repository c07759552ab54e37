"""Pretrained audio embeddings (BirdNET V2.4 by default) as a cached stage, and linear or
small MLP probes trained on them per fold: an experiment of kind `embedding_probe`."""

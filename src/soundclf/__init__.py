"""soundclf: train and apply sound classifiers (BirdCLEF 2021 2nd-place recipe) with Snakemake."""

__version__ = "0.1.0"

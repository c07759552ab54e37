"""Rule assign_folds: add a fold column to the recordings table."""
from soundclf.folds import assign_folds
from soundclf.indexing import read_index, write_index
from soundclf.logs import setup_logging

setup_logging(snakemake.log[0])
cfg = snakemake.params.folds
index = read_index(snakemake.input.recordings)
index["fold"] = assign_folds(index, cfg["n_folds"], cfg["seed"], cfg["group_column"], cfg["multilabel"])
write_index(index, snakemake.output.folds)

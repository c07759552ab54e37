"""Rule assign_folds: add a fold column to the recordings table, computed or as the
metadata gives it (folds.column)."""
from soundclf.folds import assign_folds, given_folds
from soundclf.indexing import read_index, write_index
from soundclf.logs import setup_logging

setup_logging(snakemake.log[0])
cfg = snakemake.params.folds
index = read_index(snakemake.input.recordings)
# a metadata column named 'fold' is the user's: kept as fold_given, never overwritten
index = index.rename(columns={"fold": "fold_given"})
if cfg["column"]:
    column = "fold_given" if cfg["column"] == "fold" else cfg["column"]
    index["fold"] = given_folds(index[column], snakemake.params.given_fold_values)
else:
    index["fold"] = assign_folds(index, cfg["n_folds"], cfg["seed"], cfg["group_column"], cfg["multilabel"])
write_index(index, snakemake.output.folds)

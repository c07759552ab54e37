"""Rule plot_oof: the CV table, per-class bars, confusion matrix, PR curves and example windows."""
import json

import pandas as pd

from soundclf.atomic import write_csv
from soundclf.indexing import read_classes, read_index
from soundclf.logs import setup_logging
from soundclf.mel import MelParams
from soundclf.mel_cache import MelCache
from soundclf import plots

setup_logging(snakemake.log[0])
p, out = snakemake.params, snakemake.output
oof = pd.read_csv(snakemake.input.oof)
folds = read_index(snakemake.input.folds)
classes = read_classes(snakemake.input.classes)

write_csv(plots.cv_metrics_table(json.loads(open(snakemake.input.cv_metrics).read())), out.cv_table)
plots.per_class_bars(pd.read_csv(snakemake.input.per_class), out.per_class)
plots.confusion(oof, folds, classes, out.confusion)
plots.pr_curves(oof, folds, classes, out.pr_curves)

params = MelParams.from_config({"sample_rate": p.sample_rate}, p.mel)
cache = MelCache(p.mel_dir, p.n_shards)
plots.example_windows(plots.example_inputs(oof, folds, classes, cache, params, p.segment_seconds), out.examples)

"""Rule select_ensemble: the ensemble of experiments that maximises an OOF metric on all folds
(the deployed ensemble; its score is optimistic)."""
import pandas as pd

from soundclf.atomic import write_json
from soundclf.comparison import oof_recording_scores, select_ensemble
from soundclf.indexing import read_classes, read_index
from soundclf.logs import setup_logging

setup_logging(snakemake.log[0])
p = snakemake.params
classes = read_classes(snakemake.input.classes)
scores = {exp: oof_recording_scores(pd.read_csv(path, dtype={"key": str}), classes)
          for exp, path in zip(p.experiments, snakemake.input.oof)}
folds = read_index(snakemake.input.folds)
choice = select_ensemble(scores, folds, classes, p.ensemble["metric"], p.ensemble["max_size"], p.ensemble["members"],
                         p.nocall_threshold)
write_json(choice, snakemake.output[0])

"""Rule nested_ensemble: each fold scored by the ensemble chosen without it -> the nested
ensemble's cv_metrics.json (an honest CV figure, a row of comparison.csv)."""
import json

from soundclf.atomic import write_json
from soundclf.comparison import member_scores, nested_ensemble_cv
from soundclf.indexing import read_classes, read_index
from soundclf.logs import setup_logging

log = setup_logging(snakemake.log[0])
p = snakemake.params
classes = read_classes(snakemake.input.classes)
choices = {c["fold"]: c for c in (json.loads(open(path).read()) for path in snakemake.input.choices)}
scores = member_scores(p.experiments, list(snakemake.input.windows), classes)
cv = nested_ensemble_cv(choices, scores, read_index(snakemake.input.folds), classes, p.nocall_threshold)
write_json(cv, snakemake.output[0])
log.info("nested ensemble: %s", json.dumps(cv["mean_std"]["recording"]))

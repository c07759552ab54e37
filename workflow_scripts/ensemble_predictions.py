"""Rule ensemble_predictions: the selected ensemble's predictions, the weighted mean of its
members' calibrated predictions, and their metrics when there are window labels."""
import json

import pandas as pd

from soundclf.atomic import write_csv, write_json
from soundclf.comparison import weighted_submission
from soundclf.logs import setup_logging
from soundclf.submission import prediction_metrics

log = setup_logging(snakemake.log[0])
p, out = snakemake.params, snakemake.output
ensemble = json.loads(open(snakemake.input.ensemble).read())
weights = ensemble["weights"]
submissions = {exp: pd.read_csv(path) for exp, path in zip(p.experiments, snakemake.input.submissions) if exp in weights}
submission = weighted_submission(submissions, ensemble)
write_csv(submission, out.submission)
labels = p.truth
metrics = prediction_metrics(submission, labels, p.nocall_threshold, p.window_seconds, p.annotations) if labels else {}
write_json({"labels": str(labels) if labels else None, "weights": weights, **metrics}, out.metrics)
log.info("ensemble %s: %s", weights, json.dumps(metrics))

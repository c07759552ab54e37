"""Rule aggregate_oof: all folds' held-out windows -> OOF table, CV metrics, per-class table."""
import json

import pandas as pd

from soundclf.atomic import write_csv, write_json
from soundclf.indexing import read_classes, read_index
from soundclf.logs import setup_logging
from soundclf.oof import cv_metrics, per_class_table

log = setup_logging(snakemake.log[0])
classes = read_classes(snakemake.input.classes)
folds = read_index(snakemake.input.folds)
oof = pd.concat([pd.read_csv(f, dtype={"key": str}) for f in snakemake.input.windows], ignore_index=True)
fold_metrics = [json.loads(open(f).read()) for f in snakemake.input.metrics]
summary = cv_metrics(fold_metrics, oof, folds, classes, snakemake.params.nocall_threshold)
write_csv(oof, snakemake.output.oof)
write_csv(per_class_table(oof, folds, classes), snakemake.output.per_class)
write_json(summary, snakemake.output.cv_metrics)
log.info("pooled OOF recording metrics: %s", json.dumps(summary["pooled"]["recording"]))

"""Rule predict_recordings: the prediction shards merged into one table of window scores
(windows.parquet: recording key, site, date-time, start, end, classes), its BirdCLEF
submission form, and its metrics against the window truth when there is any."""
import json

import pandas as pd

from soundclf.atomic import write_csv, write_json, write_parquet
from soundclf.indexing import secondary_only_classes
from soundclf.logs import setup_logging
from soundclf.submission import merge_shards, prediction_metrics, smooth_neighbours, submission_form, windows_table

log = setup_logging(snakemake.log[0])
p, out = snakemake.params, snakemake.output
table = merge_shards([pd.read_csv(f, dtype={"row_id": str}) for f in snakemake.input.shards])
table = smooth_neighbours(table, p.neighbour_weight)
windows = windows_table(table, p.window_seconds, p.site_level)
write_parquet(windows.astype({c: p.parquet_dtype for c in table.columns[1:]}), out.windows)
# a BirdCLEF submission lists the competition's species, the primary labels: not the classes kept
# from secondary labels alone (data.secondary_classes: keep), which windows.parquet holds
background = [c for c in secondary_only_classes(snakemake.input.classes) if c in table.columns]
if background:
    log.info("submission.csv leaves out %d class(es) heard only as secondary labels (in windows.parquet and the "
             "detections): %s", len(background), ", ".join(background))
submission = submission_form(table).drop(columns=background)
write_csv(submission, out.submission)
log.info("%d windows of %d recordings (%d with a start time in their name) from %d shard(s) -> %s, %s",
         len(windows), windows["file"].nunique(), windows.loc[windows["datetime"].notna(), "file"].nunique(),
         len(snakemake.input.shards), out.windows, out.submission)
labels = p.truth
metrics = prediction_metrics(submission, labels, p.nocall_threshold, p.window_seconds, p.annotations) if labels else {}
write_json({"labels": str(labels) if labels else None, **metrics}, out.metrics)
if metrics:
    log.info("metrics against %s: %s", labels, json.dumps(metrics))

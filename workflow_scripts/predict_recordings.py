"""Rule predict_recordings: the prediction shards merged into one submission (files in sorted
order), and its metrics against the window truth when there is any."""
import json

import pandas as pd

from soundclf.atomic import write_csv, write_json, write_parquet
from soundclf.logs import setup_logging
from soundclf.submission import list_audio, merge_shards, prediction_metrics, smooth_neighbours, window_frame

log = setup_logging(snakemake.log[0])
p, out = snakemake.params, snakemake.output
files = list_audio(p.audio_dir, p.extensions)
submission = merge_shards([pd.read_csv(f, dtype={"row_id": str}) for f in snakemake.input.shards], files)
submission = smooth_neighbours(submission, p.neighbour_weight)
write_csv(submission, out.submission)
write_parquet(window_frame(submission, p.window_seconds).astype({c: p.parquet_dtype for c in submission.columns[1:]}),
              out.windows)
log.info("%d windows of %d recordings from %d shard(s) -> %s", len(submission), len(files), len(snakemake.input.shards),
         out.submission)
labels = p.truth
metrics = prediction_metrics(submission, labels, p.nocall_threshold, p.window_seconds, p.annotations) if labels else {}
write_json({"labels": str(labels) if labels else None, **metrics}, out.metrics)
if metrics:
    log.info("metrics against %s: %s", labels, json.dumps(metrics))

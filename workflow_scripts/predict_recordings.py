"""Rule predict_recordings: fold-mean probabilities on every 5 s window of each recording."""
import json

import torch

from soundclf.atomic import write_csv, write_json
from soundclf.logs import setup_logging
from soundclf.prediction import list_audio, predict_folder, prediction_metrics

log = setup_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
p = snakemake.params
files = list_audio(p.predict["audio_dir"], p.predict["extensions"])
submission = predict_folder(files, list(snakemake.input.models), p.predict["batch_size"], p.on_bad_audio)
write_csv(submission, p.submission)
log.info("%d windows of %d recordings -> %s", len(submission), len(files), p.submission)
if p.metrics:
    metrics = prediction_metrics(submission, snakemake.input.labels, p.nocall_threshold)
    write_json(metrics, p.metrics)
    log.info("metrics against %s: %s", snakemake.input.labels, json.dumps(metrics))

"""Rule predict_recordings: fold-mean probabilities on every 5 s window of each recording,
and their metrics against the window labels when there are labels."""
import json
import logging

import torch

from soundclf.atomic import write_csv, write_json
from soundclf.logs import setup_logging
from soundclf.prediction import list_audio, predict_folder, prediction_metrics

log = setup_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
logging.getLogger("soundclf").info("%d torch threads", torch.get_num_threads())
p, out = snakemake.params, snakemake.output
files = list_audio(p.predict["audio_dir"], p.predict["extensions"])
if p.kind == "embedding_probe":
    from soundclf.embedding.probe import predict_probe_folder

    submission = predict_probe_folder(files, list(snakemake.input.models), p.on_bad_audio, threads=snakemake.threads)
else:
    submission = predict_folder(files, list(snakemake.input.models), p.predict["batch_size"], p.on_bad_audio)
write_csv(submission, out.submission)
log.info("%d windows of %d recordings -> %s", len(submission), len(files), out.submission)
labels = p.truth
metrics = prediction_metrics(submission, labels, p.nocall_threshold, p.window_seconds, p.annotations) if labels else {}
write_json({"labels": str(labels) if labels else None, **metrics}, out.metrics)
if metrics:
    log.info("metrics against %s: %s", labels, json.dumps(metrics))

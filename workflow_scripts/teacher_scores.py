"""Rules teacher_scores and probe_teacher_scores: one fold model of a teacher (of a
self-training round, or of a distilled student) on every window of the unlabeled recordings:
a CNN on their log-mels, an embedding probe on their embeddings."""
import torch

from soundclf.atomic import write_csv
from soundclf.logs import setup_logging
from soundclf.mel_cache import cached_recordings
from soundclf.self_training.teacher import teacher_window_scores

log = setup_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
p = snakemake.params
kind = "embedding_probe" if snakemake.rule == "probe_teacher_scores" else "cnn"
recordings = cached_recordings(p.unlabeled_dir, p.n_shards)
table, classes = teacher_window_scores(snakemake.input.model, recordings, p.unlabeled_dir, p.n_shards, kind, p.batch_size)
write_csv(table, snakemake.output[0])
log.info("%s: %d windows of %d unlabeled recordings scored; mean top score %.3f", snakemake.input.model,
         len(table), len(recordings), table[classes].max(axis=1).mean() if len(table) else float("nan"))

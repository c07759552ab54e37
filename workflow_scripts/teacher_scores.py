"""Rules teacher_scores and probe_teacher_scores: one fold model of a teacher (of a
self-training round, or of a distilled student) on every window of the unlabeled recordings:
a CNN on their log-mels, an embedding probe on their embeddings."""
import torch

from soundclf.atomic import write_csv
from soundclf.logs import setup_logging

log = setup_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
p = snakemake.params
if snakemake.rule == "probe_teacher_scores":
    from soundclf.embedding.cache import EmbeddingCache
    from soundclf.embedding.probe import score_probe_windows

    cache = EmbeddingCache(p.unlabeled_dir, p.n_shards)
    recordings = cache.recordings()
    table, classes = score_probe_windows(snakemake.input.model, recordings, cache)
else:
    from soundclf.evaluation import score_windows
    from soundclf.mel_cache import MelCache

    cache = MelCache(p.unlabeled_dir, p.n_shards)
    recordings = cache.recordings()
    table, classes = score_windows(snakemake.input.model, recordings, cache, p.batch_size)
write_csv(table, snakemake.output[0])
log.info("%s: %d windows of %d unlabeled recordings scored; mean top score %.3f", snakemake.input.model,
         len(table), len(recordings), table[classes].max(axis=1).mean() if len(table) else float("nan"))

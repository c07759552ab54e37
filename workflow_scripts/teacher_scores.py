"""Rule teacher_scores: one fold model of a self-training teacher on every window of the
unlabeled recordings."""
import torch

from soundclf.atomic import write_csv
from soundclf.evaluation import score_windows
from soundclf.logs import setup_logging
from soundclf.mel_cache import MelCache

log = setup_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
p = snakemake.params
cache = MelCache(p.unlabeled_dir, p.n_shards)
recordings = cache.recordings()
table, classes = score_windows(snakemake.input.model, recordings, cache, p.batch_size)
write_csv(table, snakemake.output[0])
log.info("%s: %d windows of %d unlabeled recordings scored; mean top score %.3f", snakemake.input.model,
         len(table), len(recordings), table[classes].max(axis=1).mean() if len(table) else float("nan"))

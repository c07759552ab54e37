"""Rule teacher_windows: a distillation teacher's fold-k model on every window of fold k's
training recordings (the other folds'), the soft targets of its student's fold k."""
import torch

from soundclf.atomic import write_csv
from soundclf.indexing import read_index
from soundclf.logs import setup_logging

log = setup_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
p = snakemake.params
folds, fold = read_index(snakemake.input.folds), int(snakemake.wildcards.fold)
training = folds[folds["fold"] != fold].reset_index(drop=True)
if p.kind == "embedding_probe":
    from soundclf.embedding.cache import EmbeddingCache
    from soundclf.embedding.probe import score_probe_windows

    table, classes = score_probe_windows(snakemake.input.model, training, EmbeddingCache(p.features_dir, p.n_shards))
else:
    from soundclf.evaluation import score_windows
    from soundclf.mel_cache import MelCache

    table, classes = score_windows(snakemake.input.model, training, MelCache(p.features_dir, p.n_shards), p.batch_size)
write_csv(table, snakemake.output[0])
log.info("%s: %d windows of fold %d's %d training recordings scored; mean top score %.3f", snakemake.input.model,
         len(table), fold, len(training), table[classes].max(axis=1).mean())

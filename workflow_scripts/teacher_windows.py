"""Rule teacher_windows: a distillation teacher's fold-k model on every window of fold k's
training recordings (the other folds'), the soft targets of its student's fold k."""
import torch

from soundclf.atomic import write_csv
from soundclf.indexing import read_index
from soundclf.logs import setup_logging
from soundclf.self_training.teacher import teacher_window_scores

log = setup_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
p = snakemake.params
folds, fold = read_index(snakemake.input.folds), int(snakemake.wildcards.fold)
training = folds[folds["fold"] != fold].reset_index(drop=True)
table, classes = teacher_window_scores(snakemake.input.model, training, p.features_dir, p.n_shards, p.kind, p.batch_size)
write_csv(table, snakemake.output[0])
log.info("%s: %d windows of fold %d's %d training recordings scored; mean top score %.3f", snakemake.input.model,
         len(table), fold, len(training), table[classes].max(axis=1).mean())

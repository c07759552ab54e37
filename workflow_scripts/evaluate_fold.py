"""Rule evaluate_fold: fold k's model on every 5 s window of fold k's recordings."""
import json
import logging

import torch

from soundclf.annotations import StrongLabels
from soundclf.atomic import write_csv, write_json
from soundclf.indexing import read_index
from soundclf.logs import setup_logging

log = setup_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
logging.getLogger("soundclf").info("%d torch threads", torch.get_num_threads())
p = snakemake.params
folds, fold = read_index(snakemake.input.folds), int(snakemake.wildcards.fold)
strong = StrongLabels.from_config(list(snakemake.input.annotations), p.annotations)
if p.kind == "embedding_probe":
    from soundclf.embedding.cache import EmbeddingCache
    from soundclf.embedding.probe import evaluate_probe_fold

    table, metrics = evaluate_probe_fold(snakemake.input.model, folds, fold, EmbeddingCache(p.features_dir, p.n_shards),
                                         p.evaluate["nocall_threshold"], strong)
else:
    from soundclf.evaluation import evaluate_fold
    from soundclf.mel_cache import MelCache

    table, metrics = evaluate_fold(snakemake.input.model, folds, fold, MelCache(p.features_dir, p.n_shards),
                                   p.evaluate["batch_size"], p.evaluate["nocall_threshold"], strong)
write_csv(table, snakemake.output.windows)
write_json(metrics, snakemake.output.metrics)
log.info("fold %s: %s", snakemake.wildcards.fold, json.dumps(metrics["recording"]))

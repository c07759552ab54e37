"""Rule train_fold: train fold k's model on the other folds (a CNN on log-mels, or a probe on
pretrained embeddings)."""
import logging

import pandas as pd
import torch

from soundclf.annotations import StrongLabels
from soundclf.atomic import write_csv
from soundclf.indexing import read_classes, read_index
from soundclf.logs import setup_logging

setup_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
logging.getLogger("soundclf").info("%d torch threads", torch.get_num_threads())
p = snakemake.params
folds = read_index(snakemake.input.folds)
classes = read_classes(snakemake.input.classes)
fold = int(snakemake.wildcards.fold)
if p.model["kind"] == "embedding_probe":
    from soundclf.embedding.cache import EmbeddingCache
    from soundclf.embedding.model import EmbeddingSpec
    from soundclf.embedding.probe import train_probe_fold

    meta = train_probe_fold(folds, classes, fold, EmbeddingCache(p.features_dir, p.n_shards),
                            EmbeddingSpec.from_config(p.embedding), p.model, p.train, snakemake.output.model)
    # a probe is fitted in one go: its history is one row
    write_csv(pd.DataFrame({"epoch": [1], "train_loss": [meta["train_loss"]]}), snakemake.output.history)
else:
    from soundclf.fold_training import PseudoLabels, train_fold
    from soundclf.mel import MelParams
    from soundclf.mel_cache import MelCache

    def windows(path):
        return pd.read_csv(path, dtype={"key": str})

    pseudo = None
    if snakemake.input.pseudo_labels:  # a self-training student
        pseudo = PseudoLabels(((windows(snakemake.input.pseudo_labels[0]), MelCache(p.unlabeled_dir, p.n_shards)),),
                              p.pseudo_share, "self-training")
    elif snakemake.input.teacher_windows:  # a distilled student: the teacher scored its training recordings
        parts = [(windows(snakemake.input.teacher_windows[0]), MelCache(p.features_dir, p.n_shards))]
        if snakemake.input.teacher_unlabeled:  # and the unlabeled ones (self_training.audio_dir)
            parts.append((windows(snakemake.input.teacher_unlabeled[0]), MelCache(p.unlabeled_dir, p.n_shards)))
        pseudo = PseudoLabels(tuple(parts), p.train["teacher_share"], f"distillation from {p.train['teacher']}")

    train_fold(folds, classes, fold, MelCache(p.features_dir, p.n_shards),
               MelParams.from_config({"sample_rate": p.sample_rate}, p.mel), p.model, p.train,
               snakemake.output.model, snakemake.output.history, p.work_dir,
               noise_mels=snakemake.input.noise[0] if snakemake.input.noise else None,
               strong=StrongLabels.from_config(list(snakemake.input.annotations), p.annotations,
                                               extra=list(snakemake.input.review_labels)),
               pseudo=pseudo)

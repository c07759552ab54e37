"""Rule train_fold: train fold k's model on the other folds."""
import pandas as pd
import torch

from soundclf.indexing import read_index
from soundclf.fold_training import train_fold
from soundclf.logs import setup_logging
from soundclf.mel import MelParams
from soundclf.mel_cache import MelCache

setup_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
p = snakemake.params
train_fold(
    read_index(snakemake.input.folds),
    pd.read_csv(snakemake.input.classes)["class"].tolist(),
    int(snakemake.wildcards.fold),
    MelCache(p.mel_dir, p.n_shards),
    MelParams.from_config({"sample_rate": p.sample_rate}, p.mel),
    p.model,
    p.train,
    snakemake.output.model,
    snakemake.output.history,
    p.work_dir,
)

"""Rule embed_shard: pretrained embeddings of one shard's recordings into one HDF5 file."""
import torch

from soundclf.embedding.cache import write_shard
from soundclf.embedding.model import EmbeddingSpec
from soundclf.logs import setup_logging

torch.set_num_threads(snakemake.threads)  # the resampler: torch's default, every core, fights the other jobs
setup_logging(snakemake.log[0])
p = snakemake.params
write_shard(snakemake.output[0], p.recordings, EmbeddingSpec.from_config(p.embedding), threads=snakemake.threads,
            on_bad_audio=p.on_bad_audio, backend=p.backend, export_dir=p.export_dir)

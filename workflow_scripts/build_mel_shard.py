"""Rule mel_shard: log-mels of one shard's recordings into one HDF5 file."""
import torch

from soundclf.logs import setup_logging
from soundclf.mel import MelParams
from soundclf.mel_cache import write_shard

setup_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)  # the STFT and mel matmul: as many as the job was given
cache = snakemake.params.cache
write_shard(
    snakemake.output[0],
    snakemake.params.recordings,
    MelParams.from_config({"sample_rate": snakemake.params.sample_rate}, snakemake.params.mel),
    dtype=cache["dtype"],
    chunk_frames=cache["chunk_frames"],
    compression=cache["compression"],
    on_bad_audio=snakemake.params.on_bad_audio,
)

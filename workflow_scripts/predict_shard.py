"""Rule predict_shard: fold-mean probabilities on every 5 s window of one shard's recordings,
each file's rows committed as it finishes (a killed job, rerun, continues where it stopped)."""
import logging
import shutil

import torch

from soundclf.atomic import write_csv
from soundclf.logs import setup_logging
from soundclf.prediction import predict_folder
from soundclf.submission import list_audio

log = setup_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
logging.getLogger("soundclf").info("%d torch threads", torch.get_num_threads())
p = snakemake.params
list_audio(p.predict["audio_dir"], p.predict["extensions"])  # stops when two files share a name (row ids, parts)
files = sorted(p.files)
if p.kind == "embedding_probe":
    from soundclf.embedding.probe import predict_probe_folder

    table = predict_probe_folder(files, list(snakemake.input.models), p.on_bad_audio, threads=snakemake.threads,
                                 parts_dir=p.parts_dir)
else:
    table = predict_folder(files, list(snakemake.input.models), p.predict["batch_size"], p.on_bad_audio,
                           parts_dir=p.parts_dir, num_workers=p.predict["num_workers"],
                           onnx_paths=list(snakemake.input.onnx) or None,
                           tta_shift_seconds=p.predict["tta_shift_seconds"])
write_csv(table, snakemake.output[0])
shutil.rmtree(p.parts_dir, ignore_errors=True)  # the shard is complete: nothing left to resume
log.info("shard %s: %d windows of %d recordings", snakemake.wildcards.pshard, len(table), len(files))

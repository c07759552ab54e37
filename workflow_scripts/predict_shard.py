"""Rule predict_shard: fold-mean probabilities on every 5 s window of the recordings its
manifest lists, each file's rows committed as it finishes (a killed job, rerun, continues
where it stopped, if the models and prediction keys are still those that made the rows)."""
import logging
import shutil

import torch

from soundclf.atomic import write_csv
from soundclf.logs import setup_logging
from soundclf.manifests import read_manifest
from soundclf.prediction import predict_folder
from soundclf.prediction_parts import ShardParts, parts_digest

log = setup_logging(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
logging.getLogger("soundclf").info("%d torch threads", torch.get_num_threads())
p, inp = snakemake.params, snakemake.input
recordings = read_manifest(inp.manifest)
keys, files = [k for k, _ in recordings], [f for _, f in recordings]
models = list(inp.models)
parts = ShardParts(p.parts_dir, parts_digest(models + list(inp.onnx), {"predict": p.predict, "kind": p.kind}))
if p.kind == "embedding_probe":
    from soundclf.embedding.probe import predict_probe_folder

    table = predict_probe_folder(files, models, p.on_bad_audio, threads=snakemake.threads, parts=parts, keys=keys,
                                 backend=p.embedding_backend, export_dir=p.export_dir)
else:
    table = predict_folder(files, models, p.predict["batch_size"], p.on_bad_audio, parts=parts,
                           num_workers=p.predict["num_workers"], onnx_paths=list(inp.onnx) or None,
                           tta_shift_seconds=p.predict["tta_shift_seconds"], keys=keys)
write_csv(table, snakemake.output[0])
shutil.rmtree(p.parts_dir, ignore_errors=True)  # the shard is complete: nothing left to resume
log.info("shard %s: %d windows of %d recordings", snakemake.wildcards.pshard, len(table), len(files))

"""Rule index_audio: decode-check every recording, write recordings / classes / rejected tables
and the kept/rejected summary; stop when more was rejected than data.max_rejected_fraction."""
import dataclasses
import logging

from soundclf.atomic import write_csv, write_json
from soundclf.indexing import build_index, summarise, too_many_rejected, write_index
from soundclf.logs import setup_logging
from soundclf.sources import list_recordings

setup_logging(snakemake.log[0])
data = snakemake.params.data
columns = data["columns"] if data["layout"] != "folders" else {}
index, classes, rejected = build_index(
    list_recordings(data), columns, on_bad_audio=data["on_bad_audio"], on_bad_metadata=data["on_bad_metadata"],
    min_seconds=data["min_seconds"], min_decoded_fraction=data["min_decoded_fraction"], threads=snakemake.threads,
    secondary_classes=data["secondary_classes"],
)
summary = summarise(index, rejected, snakemake.output.rejected, classes)
error = too_many_rejected(summary, data["max_rejected_fraction"])
if error:  # the job's outputs are not written: the rejected list goes to its log
    logging.getLogger("soundclf").error("rejected files:\n%s", rejected.to_string(index=False))
    raise too_many_rejected(dataclasses.replace(summary, rejected_csv=f"{snakemake.log[0]} (this job's log)"),
                            data["max_rejected_fraction"])
logging.getLogger("soundclf").info("%s", summary.text())
write_csv(rejected, snakemake.output.rejected)
write_csv(classes, snakemake.output.classes)
write_index(index, snakemake.output.recordings)
write_json(summary.as_dict(), snakemake.output.summary)

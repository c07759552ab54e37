"""Rule index_audio: decode-check every recording, write recordings / classes / rejected tables."""
from soundclf.atomic import write_csv
from soundclf.indexing import build_index, write_index
from soundclf.logs import setup_logging
from soundclf.sources import list_recordings

setup_logging(snakemake.log[0])
data = snakemake.params.data
columns = data["columns"] if data["layout"] != "folders" else {}
index, classes, rejected = build_index(
    list_recordings(data), columns, on_bad_audio=data["on_bad_audio"], on_bad_metadata=data["on_bad_metadata"],
    min_seconds=data["min_seconds"], threads=snakemake.threads,
)
write_csv(rejected, snakemake.output.rejected)
write_csv(classes, snakemake.output.classes)
write_index(index, snakemake.output.recordings)

"""Rule export_marks: a review set's current marks as one CSV and a Raven selection table per
recording."""
from pathlib import Path

from soundclf.logs import setup_logging
from soundclf.review.store import export_marks

log = setup_logging(snakemake.log[0])
exported = export_marks(Path(snakemake.input.marks).parent, snakemake.output.table, snakemake.output.raven)
log.info("%d marks of %d recordings -> %s", len(exported), exported["file"].nunique(), snakemake.output.table)

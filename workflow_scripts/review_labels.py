"""Rule review_labels: a review set's current marks as checked strong labels (the annotation
rows train.review_marks adds to an experiment's training), with the rejected marks."""
from soundclf.atomic import write_csv
from soundclf.indexing import read_classes, read_index
from soundclf.logs import setup_logging
from soundclf.review.labels import marks_as_annotations
from soundclf.review.store import current_marks

log = setup_logging(snakemake.log[0])
labels = marks_as_annotations(current_marks(snakemake.input.marks), read_index(snakemake.input.recordings),
                              read_classes(snakemake.input.classes), snakemake.input.marks)
write_csv(labels.rejected, snakemake.output.rejected)
write_csv(labels.table, snakemake.output.labels)
if len(labels.rejected):
    log.warning("%d marks rejected as labels, each with its reason and fix: %s", len(labels.rejected),
                snakemake.output.rejected)

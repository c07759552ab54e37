"""Rule index_annotations: the annotation sources (data.annotations) checked against the index
-> one table of events, negatives and annotated recordings, and the rejected rows."""
import logging

from soundclf.annotations import read_annotations
from soundclf.atomic import write_csv
from soundclf.indexing import read_classes, read_index
from soundclf.logs import setup_logging

setup_logging(snakemake.log[0])
annotations = read_annotations(snakemake.params.annotations, read_index(snakemake.input.recordings),
                               read_classes(snakemake.input.classes))
write_csv(annotations.rejected, snakemake.output.rejected)
write_csv(annotations.table, snakemake.output.annotations)
if len(annotations.rejected):
    logging.getLogger("soundclf").warning("%d annotation rows rejected, each with its reason and fix: %s",
                                          len(annotations.rejected), snakemake.output.rejected)

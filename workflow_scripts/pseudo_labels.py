"""Rule pseudo_labels: a teacher fold model's window scores turned into fold k's pseudo-labels."""
import pandas as pd

from soundclf.atomic import write_csv
from soundclf.indexing import read_classes
from soundclf.logs import setup_logging
from soundclf.self_training.pseudo_labels import pseudo_label_table

log = setup_logging(snakemake.log[0])
classes = read_classes(snakemake.input.classes)
transform = snakemake.params.transform
table = pseudo_label_table(pd.read_csv(snakemake.input.scores, dtype={"key": str}), classes,
                           int(snakemake.wildcards.fold), source=snakemake.input.scores, **transform)
write_csv(table, snakemake.output[0])
positive = (table[classes] > 0).sum()
log.info("%d windows from %s (%s): mean pseudo-label sum %.3f; windows with a non-zero label per class: %s", len(table),
         snakemake.input.scores, ", ".join(f"{k}={v}" for k, v in transform.items()), table[classes].sum(axis=1).mean(),
         ", ".join(f"{c}={n}" for c, n in positive.items()))

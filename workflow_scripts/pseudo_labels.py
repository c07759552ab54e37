"""Rule pseudo_labels: the window scores of a round's teacher fold model (or the weighted mean
of the ensemble members' fold-k models, calibrated) turned into fold k's pseudo-labels."""
import json

import pandas as pd

from soundclf.atomic import write_csv
from soundclf.indexing import read_classes
from soundclf.logs import setup_logging
from soundclf.self_training.pseudo_labels import pseudo_label_table, weighted_scores

log = setup_logging(snakemake.log[0])
classes = read_classes(snakemake.input.classes)
p = snakemake.params
tables = {exp: pd.read_csv(path, dtype={"key": str}) for exp, path in zip(p.members, snakemake.input.scores)}
if snakemake.input.ensemble:
    ensemble = json.loads(open(snakemake.input.ensemble[0]).read())
    weights = ensemble["weights"]
    scores, source = weighted_scores(tables, weights, classes, ensemble["calibration"]), f"the ensemble {weights}"
else:
    scores, source = next(iter(tables.values())), snakemake.input.scores[0]
table = pseudo_label_table(scores, classes, int(snakemake.wildcards.fold), source=source, **p.transform)
write_csv(table, snakemake.output[0])
positive = (table[classes] > 0).sum()
log.info("%d windows from %s (%s): mean pseudo-label sum %.3f; windows with a non-zero label per class: %s", len(table),
         source, ", ".join(f"{k}={v}" for k, v in p.transform.items()), table[classes].sum(axis=1).mean(),
         ", ".join(f"{c}={n}" for c, n in positive.items()))

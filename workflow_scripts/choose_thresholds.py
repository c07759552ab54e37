"""Rule choose_thresholds: each class's F1-optimal and target-precision thresholds on the OOF
windows, against their window truth (the events they hold where annotated)."""
import pandas as pd

from soundclf.annotations import StrongLabels
from soundclf.atomic import write_csv
from soundclf.detections import class_thresholds
from soundclf.scoring import window_truth
from soundclf.indexing import read_classes, read_index
from soundclf.logs import setup_logging

log = setup_logging(snakemake.log[0])
p = snakemake.params
classes = read_classes(snakemake.input.classes)
oof = pd.read_csv(snakemake.input.oof, dtype={"key": str})
strong = StrongLabels.from_config(list(snakemake.input.annotations), p.annotations)
truth = window_truth(oof, read_index(snakemake.input.folds), len(classes), strong)
table = class_thresholds(truth, oof[classes].to_numpy(), classes, p.target_precision)
write_csv(table, snakemake.output.thresholds)
log.info("thresholds on %d OOF windows:\n%s", len(oof), table.to_string(index=False))

"""Rule detect_events: a prediction's windows that pass each class's threshold, merged into
events -> detections.csv, a Raven selection table and an Audacity label file per recording."""
import pandas as pd

from soundclf.detections import detect, thresholds_for, write_detections
from soundclf.atomic import write_parquet
from soundclf.logs import setup_logging
from soundclf.prediction import window_frame

log = setup_logging(snakemake.log[0])
p, out = snakemake.params, snakemake.output
submission = pd.read_csv(snakemake.input.submission)
classes = list(submission.columns[1:])
thresholds = thresholds_for(pd.read_csv(snakemake.input.thresholds, dtype={"class": str}), classes, p.threshold,
                            p.min_score)
windows = window_frame(submission, p.window_seconds)
events = detect(windows, thresholds)
write_detections(events, windows["file"].unique().tolist(), out.raven, out.audacity, out.detections)
write_parquet(events, out.detections_parquet)
log.info("%d detections in %d recordings (thresholds: %s)", len(events), windows["file"].nunique(),
         "predict.min_score" if p.min_score is not None else f"OOF {p.threshold}")

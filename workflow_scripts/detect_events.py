"""Rule detect_events: a prediction's windows that pass each class's threshold, merged into
events -> detections.csv, a Raven selection table and an Audacity label file per recording.
With predict.threshold calibrated, the thresholds and each detection's probability of being
right come from a review set's calibration."""
import pandas as pd

from soundclf.detections import calibrated_thresholds, detect, thresholds_for, with_probability, write_detections
from soundclf.atomic import write_parquet
from soundclf.logs import setup_logging
from soundclf.submission import window_frame

log = setup_logging(snakemake.log[0])
p, inp, out = snakemake.params, snakemake.input, snakemake.output
submission = pd.read_csv(inp.submission)
classes = list(submission.columns[1:])
oof_thresholds = pd.read_csv(inp.thresholds, dtype={"class": str})
calibrated = p.threshold == "calibrated" and p.min_score is None
thresholds = thresholds_for(oof_thresholds, classes, "f1" if calibrated else p.threshold, p.min_score)
if calibrated:
    thresholds, fits = calibrated_thresholds(pd.read_csv(inp.calibration, dtype={"class": str}), thresholds,
                                             p.target_probability)
windows = window_frame(submission, p.window_seconds)
events = detect(windows, thresholds)
if calibrated:
    events = with_probability(events, fits)
write_detections(events, windows["file"].unique().tolist(), out.raven, out.audacity, out.detections)
write_parquet(events, out.detections_parquet)
log.info("%d detections in %d recordings (thresholds: %s)", len(events), windows["file"].nunique(),
         "predict.min_score" if p.min_score is not None else
         f"calibrated, probability {p.target_probability:g}" if calibrated else f"OOF {p.threshold}")

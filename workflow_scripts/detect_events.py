"""Rule detect_events: a prediction's windows that pass each class's threshold, merged into
events -> detections.csv (with each event's site and date-time), a Raven selection table and
an Audacity label file per recording, in the recording's sub-folders.
With predict.threshold calibrated, the thresholds and each detection's probability of being
right come from a review set's calibration."""
import pandas as pd

from soundclf.detections import calibrated_thresholds, detect, thresholds_for, with_probability, write_detections
from soundclf.atomic import write_parquet
from soundclf.logs import setup_logging
from soundclf.submission import WINDOW_COLUMNS

log = setup_logging(snakemake.log[0])
p, inp, out = snakemake.params, snakemake.input, snakemake.output
windows = pd.read_parquet(inp.windows)
classes = [c for c in windows.columns if c not in WINDOW_COLUMNS]
oof_thresholds = pd.read_csv(inp.thresholds, dtype={"class": str})
calibrated = p.threshold == "calibrated" and p.min_score is None
thresholds = thresholds_for(oof_thresholds, classes, "f1" if calibrated else p.threshold, p.min_score)
if calibrated:
    thresholds, fits = calibrated_thresholds(pd.read_csv(inp.calibration, dtype={"class": str}), thresholds,
                                             p.target_probability)
events = detect(windows, thresholds)
if calibrated:
    events = with_probability(events, fits)
# an event starts at its first window: its site and date-time are that window's (windows.parquet)
where = windows.set_index(["file", "start"])[["site", "datetime"]]
where = where.reindex(pd.MultiIndex.from_frame(events[["file", "start"]]))
events.insert(1, "site", where["site"].to_numpy())
events.insert(2, "datetime", where["datetime"].to_numpy())
write_detections(events, windows["file"].unique().tolist(), out.raven, out.audacity, out.detections)
write_parquet(events, out.detections_parquet)
log.info("%d detections in %d recordings (thresholds: %s)", len(events), windows["file"].nunique(),
         "predict.min_score" if p.min_score is not None else
         f"calibrated, probability {p.target_probability:g}" if calibrated else f"OOF {p.threshold}")

"""Rule search_detections: round r's probe as a detector over the whole archive: its scores,
with a threshold calibrated on the marks of round r's own review set, and every window marked
so far as the person marked it (yes: detected; no: never) -> detections.csv,
calibration.csv and its figure, a Raven selection table and an Audacity label file per recording."""
from pathlib import Path

import pandas as pd

from soundclf.atomic import write_csv
from soundclf.detections import write_detections
from soundclf.logs import setup_logging
from soundclf.review.figures import calibration_curves
from soundclf.review.items import read_items
from soundclf.review.store import current_marks, marked_items
from soundclf.search.detections import round_detections
from soundclf.search.rounds import marked_windows

log = setup_logging(snakemake.log[0])
p, inp, out = snakemake.params, snakemake.input, snakemake.output
label = snakemake.wildcards.label
scores = pd.read_parquet(inp.scores)
items = read_items(Path(inp.review_items).parent)
marked = marked_items(items, current_marks(inp.marks))
log.info("%s round %s: %d of the round's %d windows are marked (%s)", label, snakemake.wildcards.sround, len(marked),
         len(items), marked["mark"].value_counts().to_dict())
known = marked_windows(list(inp.all_marks), label, pd.DataFrame(columns=["file", "start"]))
events, calibration = round_detections(scores, marked, label, p.window_seconds, p.targets, p.target_probability,
                                       p.min_marks, p.bootstrap, known)
write_csv(calibration, out.calibration)
calibration_curves(marked, calibration, out.curves)
write_detections(events, scores["file"].unique().tolist(), out.raven, out.audacity, out.detections)
log.info("%s: %d detections in %d of %d recordings (%d holding a window marked yes; threshold %.4g, %s)", label,
         len(events), events["file"].nunique(), scores["file"].nunique(), int((events["marked_yes"] > 0).sum()),
         events["threshold"].iloc[0] if len(events) else float("nan"),
         f"calibrated to probability {p.target_probability:g}" if calibration["status"].eq("ok").any()
         else "no calibration: calibration.csv says why")

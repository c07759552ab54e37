"""Rule calibrate: a review set's marks -> per-class calibration (thresholds for the target
probabilities) and call density, with their figures."""
import json
from pathlib import Path

import pandas as pd

from soundclf.atomic import write_csv
from soundclf.logs import setup_logging
from soundclf.review.calibration import calibration_table, call_density
from soundclf.review.figures import calibration_curves, call_density_bars
from soundclf.review.items import read_items
from soundclf.review.sampling import read_scores
from soundclf.review.store import current_marks, marked_items

log = setup_logging(snakemake.log[0])
p, inp, out = snakemake.params, snakemake.input, snakemake.output
items = read_items(Path(inp.review_items).parent)
marks = current_marks(inp.marks)
marked = marked_items(items, marks)
log.info("%d current marks, %d of them on items of this set (the marks of items it no longer holds stay in "
         "marks.csv and are left out here)", len(marks), len(marked))
labels = list(dict.fromkeys(items["label"]))
calibration = calibration_table(marked, read_scores(inp.windows, labels), p.targets, p.min_marks, p.bootstrap)
density = call_density(marked, pd.read_csv(inp.bins, dtype={"label": str}),
                       pd.read_csv(inp.site_bins, dtype={"label": str, "site": str}, keep_default_na=False))
write_csv(calibration, out.calibration)
write_csv(density, out.density)
calibration_curves(marked, calibration, out.curves)
call_density_bars(density, out.density_figure)
fitted = calibration.drop_duplicates("class")
log.info("calibrated %d of %d classes; the others: %s", int((fitted["status"] == "ok").sum()), len(fitted),
         json.dumps(dict(zip(fitted.loc[fitted["status"] != "ok", "class"], fitted.loc[fitted["status"] != "ok", "status"]))))

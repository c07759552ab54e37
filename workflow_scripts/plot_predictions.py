"""Rule plot_predictions: species probabilities over time for the first predicted recording,
with the windows where each class is present when there is window truth."""
import pandas as pd

from soundclf.logs import setup_logging
from soundclf.plots import prediction_timeline
from soundclf.submission import row_files, window_truth

setup_logging(snakemake.log[0])
p = snakemake.params
submission = pd.read_csv(snakemake.input.submission)
truth = window_truth(p.truth, submission, p.window_seconds, p.annotations) if p.truth else None
first = row_files(submission["row_id"]).iloc[0]
prediction_timeline(submission, first, snakemake.output[0], truth=truth)

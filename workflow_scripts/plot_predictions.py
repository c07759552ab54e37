"""Rule plot_predictions: species probabilities over time for the first predicted recording."""
import pandas as pd

from soundclf.logs import setup_logging
from soundclf.plots import prediction_timeline

setup_logging(snakemake.log[0])
submission = pd.read_csv(snakemake.input.submission)
labels = pd.read_csv(str(snakemake.input.labels)) if snakemake.input.labels else None  # optional input
first = submission["row_id"].iloc[0].rsplit("_", 1)[0]
prediction_timeline(submission, first, snakemake.output[0], labels=labels)

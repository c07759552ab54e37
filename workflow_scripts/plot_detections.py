"""Rule plot_detections: detections per species by date and hour of day, per site."""
import pandas as pd

from soundclf.logs import setup_logging
from soundclf.plots import detection_activity

setup_logging(snakemake.log[0])
detection_activity(pd.read_parquet(snakemake.input.detections), snakemake.output[0])

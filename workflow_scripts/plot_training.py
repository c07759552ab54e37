"""Rule plot_training: per-fold training curves."""
import re

import pandas as pd

from soundclf.logs import setup_logging
from soundclf.plots import training_curves

setup_logging(snakemake.log[0])
histories = {int(re.search(r"fold(\d+)/history.csv$", path)[1]): pd.read_csv(path) for path in snakemake.input.histories}
training_curves(histories, snakemake.output[0])

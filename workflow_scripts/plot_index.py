"""Rule plot_index: what the index kept and rejected, first in the report."""
import json

from soundclf.logs import setup_logging
from soundclf.plots import input_summary

setup_logging(snakemake.log[0])
with open(snakemake.input.summary) as f:
    input_summary(json.load(f), snakemake.output[0])

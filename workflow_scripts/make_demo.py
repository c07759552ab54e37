"""Rule make_demo: write the synthetic demo dataset."""
import contextlib
from pathlib import Path

from soundclf.demo import DemoConfig, generate
from soundclf.logs import setup_logging

setup_logging(snakemake.log[0])
with open(snakemake.log[0], "a") as log, contextlib.redirect_stdout(log):
    generate(Path(snakemake.output.metadata).parent, DemoConfig.from_dict(snakemake.params.demo))

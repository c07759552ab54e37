# soundclf: audio indexing -> folds -> log-mel HDF5 cache (-> training, evaluation, prediction)
import sys
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")

# The package holds all real logic; make it importable even when it is not installed.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from soundclf import sources
from soundclf.config import check_config, demo_dir, effective_data


configfile: "config.yaml"


validate(config, "schemas/config.schema.yaml", set_default=True)
check_config(config)

RESULTS = config["results_dir"]
DATA = effective_data(config)


include: "rules/common.smk"
include: "rules/demo.smk"
include: "rules/index.smk"
include: "rules/folds.smk"
include: "rules/mels.smk"


rule all:
    input:
        FOLDS_TABLE,
        MEL_SHARDS,
    default_target: True

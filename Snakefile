# soundclf: audio indexing -> folds -> log-mel HDF5 cache -> per-fold training -> evaluation on
# 5 s windows -> out-of-fold aggregation -> prediction on long recordings
import json
import os
import re
import shutil
import sys
from pathlib import Path

from snakemake.settings.types import DeploymentMethod
from snakemake.utils import min_version, validate

min_version("9.0")

# The package holds all real logic; make it importable here and in every job (local, conda or
# SLURM: jobs inherit the environment) even when it is not installed.
SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, SRC)
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)
from soundclf import manifests, sources
from soundclf.config import (ConfigError, check_backbone, check_config, check_schema, container_problems, demo_dir,
                             effective_data, effective_predict)
from soundclf.multilabel import headlines, loss_warning
from soundclf.experiments import (embedding_digest, experiment_configs, mel_cache_params, mel_digest, model_input,
                                  noise_digest, self_training_students, training_params)
from soundclf.embedding.model import cache_params
from soundclf.review.sets import check_review_marks, review_sets
from soundclf.search import archive
from soundclf.search.queries import read_queries, read_query_table
from soundclf.self_training.rounds import ENSEMBLE


configfile: Path(workflow.basedir) / "config.yaml"


report: "report/workflow.rst"


check_schema(config, Path(workflow.basedir) / "schemas/config.schema.yaml")  # messages naming key and fix
validate(config, "schemas/config.schema.yaml", set_default=True)  # fills in the defaults
for _name, _cfg in experiment_configs(config).items():  # each experiment's merged config, alike
    check_schema(_cfg, Path(workflow.basedir) / "schemas/config.schema.yaml", prefix=f"experiments.{_name}: ")
    check_config(_cfg)
    if workflow.is_main_process:  # jobs re-parse this file; the check needs seconds of timm import
        check_backbone(_cfg["model"]["backbone"], Path(".snakemake/soundclf_checks"))

if workflow.is_main_process:
    _problems = container_problems(config["container"]["image"],
                                   DeploymentMethod.APPTAINER in workflow.deployment_settings.deployment_method,
                                   shutil.which)
    if _problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(_problems))


container: config["container"]["image"]  # null: no container


RESULTS = config["results_dir"]
CONDA_ENV = "../envs/soundclf.yaml"  # relative to rules/, where the rules live
DATA = effective_data(config)


include: "rules/common.smk"
include: "rules/demo.smk"
include: "rules/index.smk"
include: "rules/folds.smk"
include: "rules/mels.smk"
include: "rules/embeddings.smk"
include: "rules/self_training.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/predict.smk"
include: "rules/report.smk"
include: "rules/experiments.smk"
include: "rules/review.smk"
include: "rules/search.smk"


if workflow.is_main_process:
    write_manifests_before_planning()
    # softmax CE on multi-label data: one warning before any job. Not for the demo (its data do not
    # exist yet on a first run, and its ablation measured CE above BCE: README, docs/models.md)
    _loss_warning = DATA["layout"] != "demo" and loss_warning(sources.label_kind_of(existing_recordings(), DATA),
                                                               EXPERIMENTS)
    if _loss_warning:
        print(_loss_warning, file=sys.stderr)


wildcard_constraints:
    exp="|".join(map(re.escape, EXP_NAMES)),
    fold=r"\d+",
    pshard=r"\d+",
    round=r"\d+",
    review="|".join(map(re.escape, REVIEW_SETS)) or "$^",


onsuccess:
    # what the index kept and rejected, where people look: at the end of the run
    if Path(INDEX_SUMMARY).is_file():
        print(f"soundclf input data: {json.loads(Path(INDEX_SUMMARY).read_text())['text']}")
    # each experiment's CV result, led by the metrics that fit the data (soundclf.multilabel)
    _lines = headlines({exp: f"{EXP_DIR}/{exp}/oof/cv_metrics.json" for exp in EXP_NAMES})
    if _lines:
        print("soundclf cross-validation:\n  " + "\n  ".join(_lines))


rule all:
    input:
        FOLD_OUTPUTS,
        OOF_OUTPUTS,
        PREDICTION_OUTPUTS,
        REPORT_OUTPUTS,
        COMPARISON_OUTPUTS,
        ENSEMBLE_OUTPUTS,
        REVIEW_OUTPUTS,
        SEARCH_OUTPUTS,
    default_target: True

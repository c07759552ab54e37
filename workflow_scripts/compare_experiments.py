"""Rule compare_experiments: every experiment's CV metrics side by side (and the nested
ensemble's, with two or more candidates), paired per-fold differences against the reference,
and a figure of the same."""
import json

from soundclf.atomic import write_csv
from soundclf.comparison import NESTED_ENSEMBLE, comparison_table
from soundclf.logs import setup_logging
from soundclf.plots import experiment_comparison

log = setup_logging(snakemake.log[0])
p = snakemake.params
cvs = {exp: json.loads(open(path).read()) for exp, path in zip(p.experiments, snakemake.input.cv_metrics)}
reference = p.compare["reference"] or p.experiments[0]
if reference not in cvs:
    raise ValueError(f"compare.reference: '{reference}' is not an experiment ({', '.join(cvs)})")
if snakemake.input.nested:
    cvs[NESTED_ENSEMBLE] = json.loads(open(snakemake.input.nested[0]).read())
table = comparison_table(cvs, dict(zip(p.experiments, p.benchmarks)), reference, p.compare["metric"])
write_csv(table, snakemake.output.table)
experiment_comparison(cvs, p.compare["metric"], reference, snakemake.output.figure)
first = table.columns.get_loc("train_seconds_per_fold") + 1  # the lead metrics, compare.metric and its differences
log.info("comparison on %s:\n%s", p.compare["metric"], table.iloc[:, :first].to_string(index=False))

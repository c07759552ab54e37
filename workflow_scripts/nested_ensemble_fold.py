"""Rule nested_ensemble_fold: fold k's ensemble (members, weights, calibration), chosen as
select_ensemble does on the other folds' window tables alone."""
from soundclf.atomic import write_json
from soundclf.comparison import member_scores, select_ensemble
from soundclf.indexing import read_classes, read_index
from soundclf.logs import setup_logging

setup_logging(snakemake.log[0])
p = snakemake.params
fold = int(snakemake.wildcards.fold)
classes = read_classes(snakemake.input.classes)
folds = read_index(snakemake.input.folds)
training = folds[folds["fold"] != fold]
scores = {exp: s.loc[s.index.isin(training["key"])] for exp, s in
          member_scores(p.experiments, list(snakemake.input.windows), classes).items()}
choice = select_ensemble(scores, training, classes, p.ensemble["metric"], p.ensemble["max_size"],
                         p.ensemble["members"], p.nocall_threshold)
write_json({"fold": fold, "training_folds": sorted(int(j) for j in training["fold"].unique()), **choice},
           snakemake.output[0])

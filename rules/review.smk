# Review (docs/review.md): per review set, the windows a person listens to (items, clips and
# spectrograms) drawn from an experiment's predictions or OOF windows; the page `soundclf review
# results/review/<name>` writes marks.csv, the one file no rule writes; calibration and the
# marks' export read it (editing it reruns them and what follows). Seconds of work each: on a
# cluster they run where Snakemake runs.

localrules:
    review_set,
    calibrate,
    export_marks,
    review_labels,


def review_source(wildcards):
    """What a review set draws from: the experiment's prediction windows, or its OOF windows
    and the index (for the recordings' paths)."""
    settings = REVIEW_SETS[wildcards.review]
    if settings["source"] == "oof":
        return {"windows": f"{EXP_DIR}/{settings['experiment']}/oof/oof_windows.csv", "index": INDEX_TABLE,
                "classes": CLASSES_TABLE}
    return {"windows": f"{EXP_DIR}/{settings['experiment']}/predictions/windows.parquet"}


def review_marks(wildcards):
    """The set's marks.csv; none yet stops the plan with what to do."""
    return reviewed_marks(Path(REVIEW_ROOT) / wildcards.review, "Review the set first", "docs/review.md")


rule review_set:
    input:
        unpack(review_source),
    output:
        review_items=f"{REVIEW_DIR}/items.csv",
        bins=f"{REVIEW_DIR}/bins.csv",
        site_bins=f"{REVIEW_DIR}/site_bins.csv",
        meta=f"{REVIEW_DIR}/review.json",
        clips=directory(f"{REVIEW_DIR}/clips"),
    params:
        settings=lambda wc: REVIEW_SETS[wc.review],
        audio=lambda wc: EXPERIMENTS[REVIEW_SETS[wc.review]["experiment"]]["audio"],
        mel=lambda wc: EXPERIMENTS[REVIEW_SETS[wc.review]["experiment"]]["mel"],
        audio_dir=lambda wc: PREDICT[REVIEW_SETS[wc.review]["experiment"]]["audio_dir"],
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/review_set/{{review}}.log",
    benchmark:
        f"{BENCHMARKS}/review_set/{{review}}.tsv"
    script:
        "../workflow_scripts/review_set.py"


rule calibrate:
    input:
        unpack(review_source),
        review_items=f"{REVIEW_DIR}/items.csv",
        bins=f"{REVIEW_DIR}/bins.csv",
        site_bins=f"{REVIEW_DIR}/site_bins.csv",
        marks=review_marks,
    output:
        calibration=f"{REVIEW_DIR}/calibration.csv",
        density=f"{REVIEW_DIR}/call_density.csv",
        curves=report(f"{REVIEW_DIR}/calibration.png", caption="../report/calibration.rst", category="6. Review",
                      subcategory="{review}"),
        density_figure=report(f"{REVIEW_DIR}/call_density.png", caption="../report/call_density.rst",
                              category="6. Review", subcategory="{review}"),
    params:
        classes=lambda wc: REVIEW_SETS[wc.review]["classes"],
        targets=config["review"]["target_probability"],
        min_marks=config["review"]["min_marks"],
        bootstrap=config["review"]["bootstrap"],
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/calibrate/{{review}}.log",
    benchmark:
        f"{BENCHMARKS}/calibrate/{{review}}.tsv"
    script:
        "../workflow_scripts/calibrate.py"


rule export_marks:
    input:
        review_items=f"{REVIEW_DIR}/items.csv",
        marks=review_marks,
    output:
        table=f"{REVIEW_DIR}/export/marks.csv",
        raven=directory(f"{REVIEW_DIR}/export/raven"),
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/export_marks/{{review}}.log",
    benchmark:
        f"{BENCHMARKS}/export_marks/{{review}}.tsv"
    script:
        "../workflow_scripts/export_marks.py"


# Marks as training labels (train.review_marks): an experiment that names this set trains on
# them; the set's items and clips are not inputs, so redrawing a sample retrains nothing.
rule review_labels:
    input:
        marks=review_marks,
        recordings=INDEX_TABLE,
        classes=CLASSES_TABLE,
    output:
        labels=f"{REVIEW_DIR}/labels.csv",
        rejected=f"{REVIEW_DIR}/labels_rejected.csv",
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/review_labels/{{review}}.log",
    benchmark:
        f"{BENCHMARKS}/review_labels/{{review}}.tsv"
    script:
        "../workflow_scripts/review_labels.py"

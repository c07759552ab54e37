# Prediction on unlabelled long recordings with the mean of an experiment's fold models. Only
# prediction keys enter here, so changing one retrains nothing.


rule predict_recordings:
    input:
        models=expand(f"{MODEL_DIR}/fold{{fold}}/model.pt", fold=FOLDS, allow_missing=True),
        audio=prediction_audio,
        labels=prediction_labels,
    output:
        submission=f"{PREDICTIONS_DIR}/submission.csv",
        metrics=f"{PREDICTIONS_DIR}/metrics.json",
    params:
        # the detection keys are detect_events' own: changing one reruns only the detections
        predict=lambda wc: {k: v for k, v in PREDICT[wc.exp].items() if k not in ("threshold", "target_precision", "min_score")},
        kind=lambda wc: EXPERIMENTS[wc.exp]["model"]["kind"],
        nocall_threshold=lambda wc: EXPERIMENTS[wc.exp]["evaluate"]["nocall_threshold"],
        truth=lambda wc: truth_of(wc.exp),
        window_seconds=lambda wc: EXPERIMENTS[wc.exp]["train"]["segment_seconds"],
        annotations=DATA["annotations"],
        on_bad_audio=DATA["on_bad_audio"],
    threads: config["threads"]["predict"]
    resources:
        gpu=GPU_REQUEST,
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/predict_recordings/{{exp}}.log",
    benchmark:
        f"{BENCHMARKS}/predict_recordings/{{exp}}.tsv"
    script:
        "../workflow_scripts/predict_recordings.py"


# Detections: the windows passing each class's threshold, runs merged into events, as Raven
# selection tables and Audacity labels per recording and one table. Seconds of work: on a
# cluster it runs where Snakemake runs.
localrules:
    detect_events,


rule detect_events:
    input:
        submission=f"{PREDICTIONS_DIR}/submission.csv",
        thresholds=f"{OOF_DIR}/thresholds.csv",
    output:
        detections=f"{PREDICTIONS_DIR}/detections.csv",
        raven=directory(f"{PREDICTIONS_DIR}/raven"),
        audacity=directory(f"{PREDICTIONS_DIR}/audacity"),
    params:
        threshold=lambda wc: PREDICT[wc.exp]["threshold"],
        min_score=lambda wc: PREDICT[wc.exp]["min_score"],
        window_seconds=lambda wc: EXPERIMENTS[wc.exp]["train"]["segment_seconds"],
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/detect_events/{{exp}}.log",
    benchmark:
        f"{BENCHMARKS}/detect_events/{{exp}}.tsv"
    script:
        "../workflow_scripts/detect_events.py"

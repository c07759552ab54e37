# Prediction on unlabelled long recordings with the mean of an experiment's fold models, in
# predict.n_shards jobs (a file's shard: a hash of its path), each resumable file by file. Only
# prediction keys enter here, so changing one retrains nothing.


rule export_onnx:
    input:
        f"{MODEL_DIR}/fold{{fold}}/model.pt",
    output:
        f"{MODEL_DIR}/fold{{fold}}/model.onnx",
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/export_onnx/{{exp}}/fold{{fold}}.log",
    benchmark:
        f"{BENCHMARKS}/export_onnx/{{exp}}/fold{{fold}}.tsv"
    script:
        "../workflow_scripts/export_onnx.py"


rule predict_shard:
    input:
        models=expand(f"{MODEL_DIR}/fold{{fold}}/model.pt", fold=FOLDS, allow_missing=True),
        # predict.backend onnx: the fold models as ONNX, run with onnxruntime
        onnx=lambda wc: ([f"{EXP_DIR}/{wc.exp}/models/fold{k}/model.onnx" for k in FOLDS]
                         if PREDICT[wc.exp]["backend"] == "onnx" and EXPERIMENTS[wc.exp]["model"]["kind"] == "cnn" else []),
        manifest=prediction_manifest,  # its recordings' keys, paths, sizes, mtimes: the list the job reads
    output:
        f"{PREDICTIONS_DIR}/shards/shard_{{pshard}}.csv",
    params:
        # the detection and truth keys are other rules': changing one predicts nothing again
        predict=lambda wc: {k: v for k, v in PREDICT[wc.exp].items() if k not in PREDICTION_ONLY_ELSEWHERE},
        kind=lambda wc: EXPERIMENTS[wc.exp]["model"]["kind"],
        # a probe's embeddings: how they are computed, not what they are (derived: no rerun, rules/embeddings.smk)
        embedding_backend=lambda wc, threads: EXPERIMENTS[wc.exp]["embedding"]["backend"],
        export_dir=lambda wc, threads: EMBED_EXPORT_DIR,
        on_bad_audio=DATA["on_bad_audio"],
        # each file's rows, committed as they finish: not an output, so a killed job's survive
        parts_dir=lambda wc: f"{EXP_DIR}/{wc.exp}/predictions/shards/shard_{wc.pshard}.parts",
    threads: config["threads"]["predict"]
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/predict_shard/{{exp}}/shard_{{pshard}}.log",
    benchmark:
        f"{BENCHMARKS}/predict_shard/{{exp}}/shard_{{pshard}}.tsv"
    script:
        "../workflow_scripts/predict_shard.py"


# The shards merged in file order, and their metrics against the window truth when there is any.
rule predict_recordings:
    input:
        shards=lambda wc: [f"{EXP_DIR}/{wc.exp}/predictions/shards/shard_{s}.csv" for s in range(PREDICT[wc.exp]["n_shards"])],
        labels=prediction_labels,
        classes=CLASSES_TABLE,  # the classes heard only as secondary labels stay out of submission.csv
    output:
        submission=f"{PREDICTIONS_DIR}/submission.csv",
        windows=f"{PREDICTIONS_DIR}/windows.parquet",
        metrics=f"{PREDICTIONS_DIR}/metrics.json",
    params:
        parquet_dtype=lambda wc: PREDICT[wc.exp]["parquet_dtype"],
        site_level=lambda wc: PREDICT[wc.exp]["site_level"],
        neighbour_weight=lambda wc: PREDICT[wc.exp]["neighbour_weight"],
        nocall_threshold=lambda wc: EXPERIMENTS[wc.exp]["evaluate"]["nocall_threshold"],
        truth=lambda wc: truth_of(wc.exp),
        window_seconds=lambda wc: EXPERIMENTS[wc.exp]["train"]["segment_seconds"],
        annotations=DATA["annotations"],
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
        unpack(detection_thresholds),
        windows=f"{PREDICTIONS_DIR}/windows.parquet",
    output:
        detections=f"{PREDICTIONS_DIR}/detections.csv",
        detections_parquet=f"{PREDICTIONS_DIR}/detections.parquet",
        raven=directory(f"{PREDICTIONS_DIR}/raven"),
        audacity=directory(f"{PREDICTIONS_DIR}/audacity"),
    params:
        threshold=lambda wc: PREDICT[wc.exp]["threshold"],
        target_probability=lambda wc: PREDICT[wc.exp]["target_probability"],
        min_score=lambda wc: PREDICT[wc.exp]["min_score"],
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/detect_events/{{exp}}.log",
    benchmark:
        f"{BENCHMARKS}/detect_events/{{exp}}.tsv"
    script:
        "../workflow_scripts/detect_events.py"

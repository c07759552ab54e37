# Audio indexing: decode-check every listed recording -> recordings table, classes, rejected files.


rule index_audio:
    input:
        manifests=all_manifests,  # every recording (soundclf.manifests), one small file per shard
        metadata=metadata_input,
    output:
        recordings=INDEX_TABLE,
        classes=CLASSES_TABLE,
        rejected=REJECTED_TABLE,
        summary=INDEX_SUMMARY,
    params:
        data={k: v for k, v in DATA.items() if k != "annotations"},  # index_annotations reads those
    threads: config["threads"]["index"]
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/index_audio.log",
    benchmark:
        f"{BENCHMARKS}/index_audio.tsv"
    script:
        "../workflow_scripts/index_audio.py"


# Strong labels (data.annotations): events checked against the index. Not an input of the
# mel caches, so a changed annotation reruns training and evaluation only.
rule index_annotations:
    input:
        recordings=INDEX_TABLE,
        classes=CLASSES_TABLE,
        sources=annotation_sources,
    output:
        annotations=ANNOTATIONS_TABLE,
        rejected=f"{RESULTS}/index/annotations_rejected.csv",
    params:
        annotations={k: v for k, v in DATA["annotations"].items() if k not in ("complete", "min_overlap_seconds")},
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/index_annotations.log",
    benchmark:
        f"{BENCHMARKS}/index_annotations.tsv"
    script:
        "../workflow_scripts/index_annotations.py"

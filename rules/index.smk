# Audio indexing: decode-check every listed recording -> recordings table, classes, rejected files.


rule index_audio:
    input:
        audio=all_audio,
        metadata=metadata_input,
    output:
        recordings=INDEX_TABLE,
        classes=CLASSES_TABLE,
        rejected=REJECTED_TABLE,
        summary=INDEX_SUMMARY,
    params:
        data=DATA,
    threads: config["threads"]["index"]
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/index_audio.log",
    benchmark:
        f"{BENCHMARKS}/index_audio.tsv"
    script:
        "../workflow_scripts/index_audio.py"

# The log-mel caches: one folder per distinct set of mel parameters (their digest), one HDF5
# shard per job. A shard's inputs are only its own recordings (shard = hash of the recording
# key), so adding a recording reruns one shard per cache.


rule mel_shard:
    input:
        audio=lambda wc: [r.path for r in shard_recordings(wc.shard)],
    output:
        f"{RESULTS}/mels/{{digest}}/shard_{{shard}}.h5",
    params:
        recordings=lambda wc: [(r.key, r.path) for r in shard_recordings(wc.shard)],
        sample_rate=lambda wc: MEL_CACHES[wc.digest]["sample_rate"],
        mel=lambda wc: MEL_CACHES[wc.digest]["mel"],
        cache=lambda wc: MEL_CACHES[wc.digest]["cache"],
        on_bad_audio=DATA["on_bad_audio"],
    wildcard_constraints:
        shard=r"\d{3}",
        digest="|".join(MEL_CACHES),
    threads: config["threads"]["mel"]
    conda:
        CONDA_ENV
    log:
        f"{LOGS}/mel_shard/{{digest}}/{{shard}}.log",
    benchmark:
        f"{BENCHMARKS}/mel_shard/{{digest}}/{{shard}}.tsv"
    script:
        "../workflow_scripts/build_mel_shard.py"

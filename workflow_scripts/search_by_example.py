"""Rule search_by_example: one label's example calls searched in the archive's index ->
results/search/<label>/round0/ (candidates.csv; the review set: items.csv, review.json, clips/)."""
import numpy as np

from soundclf.atomic import write_csv, write_json
from soundclf.embedding.cache import EmbeddingCache
from soundclf.embedding.model import EmbeddingSpec
from soundclf.logs import setup_logging
from soundclf.mel import MelParams
from soundclf.review.clips import write_clips
from soundclf.search.index import ArchiveIndex
from soundclf.search.queries import candidate_items, label_vector, query_vector, search_label

log = setup_logging(snakemake.log[0])
p, inp, out = snakemake.params, snakemake.input, snakemake.output
label, s = snakemake.wildcards.label, p.settings
spec = EmbeddingSpec.from_config(p.embedding)
cache = EmbeddingCache(p.embeddings_dir, len(inp.embeddings))
vectors = np.stack([query_vector(cache.embeddings(q["key"]), spec.hop_seconds, spec.window_seconds, q["start"], q["end"])
                    for q in p.queries])
index = ArchiveIndex.load(inp.index)
candidates = search_label(index, label_vector(vectors), label, s["top_k"], s["per_recording"], spec.hop_seconds,
                          spec.window_seconds, p.paths, s["probes"])
log.info("%s: %d queries searched in %d windows of the archive -> %d candidates from %d recordings (at most %d each)",
         label, len(p.queries), index.offsets[-1], len(candidates), candidates["file"].nunique(), s["per_recording"])
write_csv(candidates, out.candidates)
items = write_clips(candidate_items(candidates), MelParams.from_config(p.audio, p.mel), s["context_seconds"], out.clips)
write_json({"name": f"search/{label}/round0", "source": "search", "classes": [label], "settings": s,
            "queries": [q["query"] for q in p.queries]}, out.meta)
write_csv(items.sort_values("item"), out.review_items)  # rank order (clips are written per file)

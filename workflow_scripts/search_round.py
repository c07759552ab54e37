"""Rule search_round: round r of a label: a probe on every window marked so far (and the query
windows), the archive scored with it, and the next review set drawn from the scores ->
results/search/<label>/round<r>/ (probe.json, scores.parquet, candidates.csv, items.csv,
review.json, clips/)."""
import pandas as pd

from soundclf.atomic import atomic_path, write_csv, write_json
from soundclf.embedding.cache import EmbeddingCache
from soundclf.embedding.model import EmbeddingSpec
from soundclf.logs import setup_logging
from soundclf.mel import MelParams
from soundclf.review.clips import write_clips
from soundclf.search.queries import candidate_items, span_windows
from soundclf.search.rounds import (Draw, draw_next, fit_round_probe, marked_windows, round_candidates, score_archive,
                                    training_set)

log = setup_logging(snakemake.log[0])
p, inp, out = snakemake.params, snakemake.input, snakemake.output
label, r = snakemake.wildcards.label, int(snakemake.wildcards.sround)
spec, draw = EmbeddingSpec.from_config(p.embedding), Draw(**(p.draw | {"seed": p.draw["seed"] + r}))  # fresh random picks
cache = EmbeddingCache(p.embeddings_dir, len(inp.embeddings))
examples = pd.DataFrame([(q["key"], w * spec.hop_seconds) for q in p.queries
                         for w in span_windows(len(cache.embeddings(q["key"])), spec.hop_seconds, spec.window_seconds,
                                               q["start"], q["end"])], columns=["file", "start"])
marked = marked_windows(list(inp.marks), label, examples)
x, target, weight, counts = training_set(marked, list(inp.embeddings), spec.hop_seconds, draw)
log.info("%s round %d: probe on %d windows marked yes (with the %d query windows), %d marked no or another species, "
         "%d random archive windows as background negatives (weight %g)", label, r, counts["yes"], len(examples),
         counts["no"], counts["background"], draw.background_weight)
probe = fit_round_probe(x, target, weight, draw.c)
write_json({"label": label, "round": r, "counts": counts, "coef": probe.coef_[0].tolist(),
            "intercept": float(probe.intercept_[0])}, out.probe)
scores = score_archive(probe, list(inp.embeddings), spec.hop_seconds)
with atomic_path(out.scores) as tmp:
    scores.to_parquet(tmp, index=False)
reviewed = set(zip(marked["file"], marked["start"]))
candidates = round_candidates(draw_next(scores, reviewed, draw), label, spec.window_seconds, p.paths)
log.info("%s round %d: %d windows scored; next review set: %s", label, r, len(scores),
         candidates["drawn_by"].value_counts().to_dict())
write_csv(candidates, out.candidates)
items = write_clips(candidate_items(candidates), MelParams.from_config(p.audio, p.mel), p.context_seconds, out.clips)
write_json({"name": f"search/{label}/round{r}", "source": "search", "classes": [label], "round": r,
            "training": counts}, out.meta)
write_csv(items.sort_values("item"), out.review_items)  # rank order (clips are written per file)

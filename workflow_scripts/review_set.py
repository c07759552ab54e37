"""Rule review_set: a review set's items drawn from an experiment's windows, with their clips and
spectrograms -> results/review/<name>/ (items.csv, bins.csv, site_bins.csv, review.json, clips/)."""
from soundclf.atomic import write_csv, write_json
from soundclf.logs import setup_logging
from soundclf.mel import MelParams
from soundclf.review.clips import write_clips
from soundclf.review.sampling import draw_review_set, read_source

log = setup_logging(snakemake.log[0])
p, inp, out = snakemake.params, snakemake.input, snakemake.output
s = p.settings
source, classes = read_source(s["source"], inp.windows, inp.get("index"), inp.get("classes"), p.audio_dir)
reviewed = s["classes"] or classes
items, bins, site_bins = draw_review_set(source, reviewed, s["per_class"], s["bins"], s["top_n"], s["seed"])
log.info("%d items of %d classes drawn from %d windows (%s of experiment %s)", len(items), len(reviewed), len(source),
         s["source"], s["experiment"])
items = write_clips(items, MelParams.from_config(p.audio, p.mel), s["context_seconds"], out.clips)
write_csv(bins, out.bins)
write_csv(site_bins, out.site_bins)
write_json({"name": snakemake.wildcards.review, "experiment": s["experiment"], "source": s["source"],
            "classes": list(reviewed), "settings": s}, out.meta)
write_csv(items.sort_values(["label", "bin", "item"], kind="stable"), out.review_items)

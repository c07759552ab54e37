"""Search by example (docs/search.md): example calls checked against the archive before any job,
the archive embedded and indexed per shard, and each label's most similar windows, a few per
recording at most, written as candidates and as a review set.

SOUNDCLF_SCREENSHOT=1 writes the review page of a search's first candidates to
docs/images/search_round.png."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO, run_snakemake, tone, write
from soundclf.embedding.model import embedding_available
from soundclf.review.items import read_items
from soundclf.review.store import append_mark, current_marks
from soundclf.search.archive import list_archive
from soundclf.search.queries import QueryError, capped_top, read_queries, span_windows
from soundclf.sources import DataSourceError
from test_killed_jobs import kill_when, start_snakemake
from test_review_browser import ARGS, CHROMIUM, Server
from test_workflow import SMALL, planned_jobs

MISSING = embedding_available()
needs_model = pytest.mark.skipif(MISSING is not None, reason=f"BirdNET V2.4 not available: {MISSING}")
SR = 48000


def chirps(seconds: float, low: float, high: float, every: float, rng: np.random.Generator) -> np.ndarray:
    """Rising chirps from `low` to `high` Hz, 0.5 s long, one every `every` seconds, in faint noise."""
    wave = 0.01 * rng.normal(size=int(seconds * SR)).astype(np.float32)
    t = np.arange(int(0.5 * SR)) / SR
    call = 0.5 * np.sin(2 * np.pi * (low * t + (high - low) * t**2)) * np.hanning(len(t))
    for start in np.arange(0.3, seconds - 0.5, every):
        i = int(start * SR)
        wave[i : i + len(call)] += call.astype(np.float32)
    return wave


def mark_in_the_browser(review_dir, items, key_of, screenshot):
    """Mark every item of a review set in the review page (Chromium), pressing key_of(item) on
    each as the page moves on; returns the current marks. The page must show the set's items.
    The page, its score shown, is saved to `screenshot` before the first mark."""
    from playwright.sync_api import sync_playwright

    server = Server(review_dir)
    server.start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": 760})
            page.goto(server.page)
            page.wait_for_function("state.items.length > 0 && state.current")
            assert page.evaluate("state.items.map(i => i.item)") == items["item"].tolist()
            page.locator("#show-score").check()
            page.wait_for_function("document.getElementById('spec-img').complete")
            page.screenshot(path=screenshot)
            for k in range(1, len(items) + 1):
                page.keyboard.press(key_of(page.evaluate("state.byId[state.current]")))
                page.wait_for_function(f"Object.keys(state.marks).length === {k}")
            browser.close()
    finally:
        server.kill9()
    return current_marks(review_dir / "marks.csv").set_index("item").loc[items["item"]]


def write_archive(folder, rng):
    """Four recordings: one with a single low whistle call at 3-6 s, one full of high chirps,
    one of other chirps, one of noise; some in a site folder."""
    quiet = 0.01 * rng.normal(size=12 * SR).astype(np.float32)
    quiet[3 * SR : 6 * SR] += tone(3.0, SR, 1200.0) * np.hanning(3 * SR).astype(np.float32)
    write(folder / "site_a/whistle.wav", quiet, SR)
    write(folder / "site_a/chorus.wav", chirps(30.0, 3000, 6000, 1.0, rng), SR)
    write(folder / "site_b/other.wav", chirps(12.0, 1500, 800, 2.0, rng), SR)
    write(folder / "noise.wav", 0.05 * rng.normal(size=9 * SR).astype(np.float32), SR)


def test_the_cap_keeps_a_few_hits_per_recording_in_score_order():
    ids = np.array([5, 6, 7, 8, 9, -1])
    recording_of = np.array(["a", "a", "a", "b", "a", ""], dtype=object)
    assert capped_top(np.linspace(1, 0, 6), ids, recording_of, k=10, per_recording=2).tolist() == [0, 1, 3]
    assert capped_top(np.linspace(1, 0, 6), ids, recording_of, k=2, per_recording=2).tolist() == [0, 1]


def test_a_span_takes_the_windows_inside_it_or_the_nearest_one():
    assert span_windows(10, 3.0, 3.0, 3.0, 9.0).tolist() == [1, 2]
    assert span_windows(10, 3.0, 3.0, 4.0, 5.0).tolist() == [1]  # shorter than a window: centre nearest
    assert span_windows(10, 1.0, 3.0, 2.0, 6.0).tolist() == [2, 3]


def test_bad_queries_and_an_empty_archive_are_named_with_the_fix(tmp_path):
    rng = np.random.default_rng(0)
    write_archive(tmp_path / "archive", rng)
    (tmp_path / "archive/broken.wav").write_bytes(b"not audio at all" * 10)
    files = [p for _, p in list_archive(tmp_path / "archive", ["wav"])]
    (tmp_path / "q.csv").write_text("query,file,start,end\n"
                                    "late,site_a/whistle.wav,10,14\n"  # the file lasts 12 s
                                    "elsewhere,site_c/none.wav,0,3\n"
                                    "garbage,broken.wav,0,3\n"
                                    "backwards,noise.wav,3,1\n")
    with pytest.raises(QueryError) as err:
        read_queries(tmp_path / "q.csv", tmp_path / "archive", files)
    text = str(err.value)
    assert "line 2 (query 'late'): ends at 14 s but 'site_a/whistle.wav' lasts 12.0 s" in text
    assert "'site_c/none.wav' is not a recording of the archive" in text and "copy it there" in text
    assert "line 4 (query 'garbage')" in text and "not readable as audio" in text
    assert "start 3 s and end 1 s are not a span" in text
    (tmp_path / "bad_label.csv").write_text("query,file,start,end,label\nq,noise.wav,0,3,two words\n")
    with pytest.raises(QueryError, match="'two words' are not letters"):
        read_queries(tmp_path / "bad_label.csv", tmp_path / "archive", files)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataSourceError, match="'.*empty' holds no audio file .*set search.audio_dir to null"):
        list_archive(tmp_path / "empty", ["wav"])


def test_the_demo_archive_hides_a_species_without_training_labels_and_its_search_plans(tmp_path):
    from soundclf.annotations import RAVEN_BEGIN, RAVEN_END
    from soundclf.demo import ARCHIVE_EXAMPLE, DemoConfig, generate

    parts = generate(tmp_path / "results/demo", DemoConfig(n_species=3, recordings_per_species=2, max_seconds=8,
                                                           n_soundscapes=1, soundscape_seconds=30,
                                                           n_archive_recordings=2), progress=False)
    assert "hooter" not in pd.read_csv(parts["metadata"])["primary_label"].tolist()
    assert [k for k, _ in list_archive(parts["archive"], ["ogg"])] == ["site_1/archive_000.ogg", "site_2/archive_001.ogg"]
    truth = {k: pd.read_csv(parts["archive_annotations"] / f"{k}.Table.1.selections.txt", sep="\t")
             for k in ("site_1/archive_000", "site_2/archive_001")}
    hoots = truth["site_1/archive_000"].query("Species == 'hooter'")
    file, start, end = ARCHIVE_EXAMPLE
    assert ((hoots[RAVEN_BEGIN] >= start) & (hoots[RAVEN_END] <= end)).any()  # the example call
    assert "hooter" not in truth["site_2/archive_001"]["Species"].tolist()  # every other recording
    assert read_queries(REPO / "configs/search_queries.csv", parts["archive"],
                        [p for _, p in list_archive(parts["archive"], ["ogg"])])[["key", "start", "end"]].values.tolist() \
        == [[file, start, end]]

    shutil.rmtree(tmp_path / "results")  # a fresh clone: the demo's archive is written by its checkpoint
    (tmp_path / "configs").symlink_to(REPO / "configs")
    jobs = planned_jobs(run_snakemake(tmp_path, "results/search/hooter/round0/items.csv", "-n",
                                      "--configfile", "configs/search.yaml"))
    assert jobs["make_demo"] == 1 and jobs["search_by_example"] == 1


@needs_model
@pytest.mark.workflow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium (.ci/run installs it)")
def test_search_finds_the_planted_call_first_and_rounds_learn_from_the_page_marks_alone(tmp_path, tiny_dataset):
    rng = np.random.default_rng(1)
    shutil.copytree(tiny_dataset, tmp_path / "data")
    write_archive(tmp_path / "archive", rng)
    (tmp_path / "queries.csv").write_text("query,file,start,end,label\n"
                                          "w1,site_a/whistle.wav,3,6,whistle\n"
                                          "c1,site_a/chorus.wav,0,3,chirp\n")
    config = SMALL | {
        "data": {"layout": "metadata", "audio_dir": "data/train_audio", "metadata_csv": "data/train_metadata.csv"},
        "search": {"audio_dir": "archive", "queries": "queries.csv", "top_k": 6, "per_recording": 2, "n_shards": 2,
                   "round": {"top": 3, "boundary": 2, "random": 2}},
        "review": {"min_marks": 2},  # a round of seven marks calibrates its detections
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    targets = [f"results/search/{label}/round0/items.csv" for label in ("whistle", "chirp")]
    run_snakemake(tmp_path, *targets, "--configfile", "c.yaml")

    whistle = pd.read_csv(tmp_path / "results/search/whistle/round0/candidates.csv")
    first = whistle.iloc[0]
    assert (first["file"], first["start"], first["end"]) == ("site_a/whistle.wav", 3.0, 6.0)  # its own window
    assert first["score"] == pytest.approx(1.0, abs=1e-2)
    chirp = pd.read_csv(tmp_path / "results/search/chirp/round0/candidates.csv")
    assert chirp.iloc[0]["file"] == "site_a/chorus.wav"
    assert chirp["file"].value_counts().max() <= 2  # ten chirp windows in one file, two kept
    assert len(chirp) == min(6, chirp["file"].nunique() * 2) and chirp["score"].is_monotonic_decreasing
    items = read_items(tmp_path / "results/search/chirp/round0")  # what the review page serves
    assert items["item"].tolist() == [f"chirp-{r:04d}" for r in range(1, len(chirp) + 1)]
    assert all((tmp_path / "results/search/chirp/round0/clips" / f"{i}.wav").is_file() for i in items["item"])

    # round 1 plans only once round 0 is reviewed
    round1 = "results/search/chirp/round1/items.csv"
    result = run_snakemake(tmp_path, round1, "-n", "--configfile", "c.yaml", check=False)
    assert result.returncode != 0 and "round0/marks.csv: no marks yet" in result.stdout + result.stderr
    # a person reviews round 0 in the review page: the chorus's chirps are the call, the rest is not
    shot = REPO / "docs/images/search_round.png" if os.environ.get("SOUNDCLF_SCREENSHOT") == "1" else tmp_path / "page.png"
    marks = mark_in_the_browser(tmp_path / "results/search/chirp/round0", items,
                                lambda item: "y" if item["file"] == "site_a/chorus.wav" else "n", shot)
    assert marks["mark"].tolist() == ["yes" if f == "site_a/chorus.wav" else "no" for f in items["file"]]
    # round 1 killed mid-job with Snakemake (as when a node dies) resumes on the next run
    run = start_snakemake(tmp_path, round1, "--configfile", "c.yaml")
    job_log = tmp_path / "results/logs/search_round/chirp/round1.log"
    assert kill_when(run, lambda: job_log.is_file() and "probe on" in job_log.read_text())
    assert not (tmp_path / round1).exists()
    run_snakemake(tmp_path, "--unlock", "--configfile", "c.yaml")
    run_snakemake(tmp_path, round1, "--configfile", "c.yaml", "--rerun-incomplete")
    probe = json.loads((tmp_path / "results/search/chirp/round1/probe.json").read_text())
    marked_yes = set(items.loc[items["file"] == "site_a/chorus.wav", "start"]) | {0.0}  # and the query's window
    n_windows = len(pd.read_parquet(tmp_path / "results/search/chirp/round1/scores.parquet"))
    # labelled: the marks and the query alone; everything else only as background
    assert probe["counts"] == {"yes": len(marked_yes), "no": int((items["file"] != "site_a/chorus.wav").sum()),
                               "background": n_windows - len(marked_yes) - int((items["file"] != "site_a/chorus.wav").sum())}
    nxt = pd.read_csv(tmp_path / "results/search/chirp/round1/candidates.csv")
    reviewed = set(zip(items["file"], items["start"])) | {("site_a/chorus.wav", 0.0)}
    assert not reviewed & set(zip(nxt["file"], nxt["start"]))  # nothing reviewed is drawn again
    assert nxt.iloc[0]["file"] == "site_a/chorus.wav" and nxt["drawn_by"].iloc[0] == "top"
    assert set(nxt["drawn_by"]) == {"top", "boundary", "random"}
    assert read_items(tmp_path / "results/search/chirp/round1")["drawn_by"].tolist() == nxt["drawn_by"].tolist()

    # round 1 reviewed (an oracle this time): its probe detects the chirps over the whole archive
    round1_items = read_items(tmp_path / "results/search/chirp/round1")
    for item in round1_items.itertuples():
        append_mark(tmp_path / "results/search/chirp/round1/marks.csv", reviewer="oracle", item=item.item,
                    file=item.file, start=item.start, end=item.end, label="chirp",
                    mark="yes" if item.file == "site_a/chorus.wav" else "no")
    run_snakemake(tmp_path, "results/search/chirp/round1/detections.csv", "--configfile", "c.yaml")
    detections = pd.read_csv(tmp_path / "results/search/chirp/round1/detections.csv")
    assert set(detections["file"]) == {"site_a/chorus.wav"} and detections["end"].max() > 25  # the whole chorus
    calibration = pd.read_csv(tmp_path / "results/search/chirp/round1/calibration.csv")
    assert calibration["n_marks"].iloc[0] == len(round1_items) and calibration["status"].eq("ok").all()
    assert detections["probability"].ge(0.95).all()  # search.target_probability
    raven = tmp_path / "results/search/chirp/round1/raven"
    # a table per recording, named by its path without the extension (sub-folders kept)
    assert len(pd.read_csv(raven / "site_a/chorus.Table.1.selections.txt", sep="\t")) == len(detections)
    assert pd.read_csv(raven / "noise.Table.1.selections.txt", sep="\t").empty

    # the probe's L2 strength: round 1 again (probe, scores, next draw), nothing before it
    (tmp_path / "l2.yaml").write_text(yaml.safe_dump({"search": {"round": {"c": 10.0}}}))
    assert planned_jobs(run_snakemake(tmp_path, round1, "-n", "--configfile", "c.yaml", "l2.yaml")) == {"search_round": 1}
    # the lists a query scans: the searches again, no embedding or index job
    (tmp_path / "probes.yaml").write_text(yaml.safe_dump({"search": {"probes": 8}}))
    jobs = planned_jobs(run_snakemake(tmp_path, *targets, "-n", "--configfile", "c.yaml", "probes.yaml"))
    assert jobs == {"search_by_example": 2}
    # the loop as one command: round 1 is marked, so it runs round 2; then round 2 waits for marks
    loop = [sys.executable, "-m", "soundclf.cli", "search", "chirp", "--no-review", "--", "-s", str(REPO / "Snakefile"),
            "--cores", "2", "--configfile", "c.yaml"]
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    step = subprocess.run(loop, cwd=tmp_path, capture_output=True, text=True, env=env)
    assert step.returncode == 0, step.stderr[-3000:]
    assert "round 1 marked" in step.stdout and (tmp_path / "results/search/chirp/round2/items.csv").is_file()
    step = subprocess.run(loop, cwd=tmp_path, capture_output=True, text=True, env=env)
    assert "round 2 has no marks yet" in step.stdout and "soundclf review results/search/chirp/round2" in step.stdout
    assert "-m snakemake" not in step.stdout  # nothing to run
    write(tmp_path / "archive/site_b/new.wav", chirps(6.0, 3000, 6000, 1.0, rng), SR)
    jobs = planned_jobs(run_snakemake(tmp_path, *targets, round1, "-n", "--configfile", "c.yaml"))
    assert jobs["archive_embed_shard"] == 1 and jobs["archive_index_shard"] == 1
    assert jobs["search_by_example"] == 2 and jobs["search_round"] == 1

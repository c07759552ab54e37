"""`soundclf search LABEL`'s next step (soundclf.search.loop), read from the round folders alone."""
import pandas as pd
import pytest

from soundclf.cli import main
from soundclf.review.items import ITEM_FILE_COLUMNS
from soundclf.review.store import append_mark
from soundclf.search.loop import next_step


def drawn(results, label: str, r: int, n: int = 3) -> pd.DataFrame:
    """round<r>'s review set of n windows, as search_by_example or search_round writes it."""
    folder = results / "search" / label / f"round{r}"
    folder.mkdir(parents=True)
    items = pd.DataFrame({"item": [f"{label}-{i:04d}" for i in range(1, n + 1)], "file": "a.wav",
                          "start": [3.0 * i for i in range(n)], "label": label, "score": 0.5, "bin": "top",
                          "drawn_by": "top", "site": "", "path": "/archive/a.wav"})
    items["end"], items["clip_start"], items["clip_end"] = items["start"] + 3, items["start"] - 2, items["start"] + 5
    items[ITEM_FILE_COLUMNS].to_csv(folder / "items.csv", index=False)
    return items


def mark(results, label: str, r: int, items: pd.DataFrame, marks: list[str]) -> None:
    for item, value in zip(items.itertuples(), marks):
        append_mark(results / "search" / label / f"round{r}" / "marks.csv", reviewer="me", item=item.item,
                    file=item.file, start=item.start, end=item.end, label=label, mark=value)


def test_each_step_of_the_loop_follows_from_the_folders(tmp_path):
    results = tmp_path / "results"
    step = next_step(results, "hooter")
    assert step.target == str(results / "search/hooter/round0/items.csv") and step.review == results / "search/hooter/round0"
    round0 = drawn(results, "hooter", 0)
    step = next_step(results, "hooter")
    assert step.target is None and step.review == results / "search/hooter/round0" and "no marks yet" in step.why
    mark(results, "hooter", 0, round0, ["yes", "no"])  # one window left
    step = next_step(results, "hooter")
    assert step.target is None and "1 of round 0's 3 windows are unmarked" in step.why
    assert next_step(results, "hooter", go_on=True).target == str(results / "search/hooter/round1/items.csv")
    mark(results, "hooter", 0, round0.iloc[2:], ["unsure"])  # unsure is a mark: the person heard it
    step = next_step(results, "hooter")
    assert step.target == str(results / "search/hooter/round1/items.csv") and step.review == results / "search/hooter/round1"
    # round 0 is a search and has no detections: asking for them runs round 1
    assert next_step(results, "hooter", detections=True).target == str(results / "search/hooter/round1/items.csv")
    round1 = drawn(results, "hooter", 1)
    assert next_step(results, "hooter").target is None  # round 1 drawn, not marked
    mark(results, "hooter", 1, round1, ["yes"])
    step = next_step(results, "hooter", detections=True)
    assert step.target == str(results / "search/hooter/round1/detections.csv") and step.review is None
    # another label's rounds, and a folder without a review set, are not this label's state
    drawn(results, "chirp", 0)
    (results / "search/hooter/round7").mkdir()
    assert next_step(results, "hooter", go_on=True).target == str(results / "search/hooter/round2/items.csv")
    # round 2 drawn and left unmarked: the detections are still round 1's, the one with marks
    drawn(results, "hooter", 2)
    assert next_step(results, "hooter", detections=True).target == str(results / "search/hooter/round1/detections.csv")
    assert next_step(results, "hooter").review == results / "search/hooter/round2"


def test_the_command_says_what_to_do_and_runs_nothing_while_a_round_waits_for_marks(tmp_path, monkeypatch, capsys):
    results = tmp_path / "results"
    drawn(results, "hooter", 0)
    monkeypatch.setattr("subprocess.call", lambda *a, **k: pytest.fail("no Snakemake run while marks are missing"))
    main(["search", "hooter", "--results", str(results), "--no-review", "--", "--profile", "slurm"])
    out = capsys.readouterr().out
    assert "round 0 has no marks yet" in out and f"soundclf review {results / 'search/hooter/round0'}" in out
    main(["search", "hooter", "--results", str(results), "--detections", "--no-review"])
    assert "round 0 has no marks yet" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stop:  # detections before any search: said, with the fix
        main(["search", "whistle", "--results", str(results), "--detections", "--no-review"])
    assert stop.value.code == 1 and "run 'soundclf search whistle' first" in capsys.readouterr().err


def test_the_command_runs_snakemake_with_the_target_first(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr("subprocess.call", lambda command: calls.append(command) or 0)
    main(["search", "hooter", "--results", str(tmp_path), "--no-review", "--", "--configfile", "a.yaml", "b.yaml"])
    assert calls[0][1:] == ["-m", "snakemake", str(tmp_path / "search/hooter/round0/items.csv"), "--configfile", "a.yaml",
                            "b.yaml"]  # --configfile takes a list: a target after it would be read as a config file
    main(["search", "hooter", "--results", str(tmp_path / "other"), "--no-review"])
    assert calls[1][4:] == ["--profile", "local"]
    monkeypatch.setattr("subprocess.call", lambda command: 1)
    with pytest.raises(SystemExit) as stop:
        main(["search", "hooter", "--results", str(tmp_path), "--no-review"])
    assert stop.value.code == 1 and "Snakemake failed (exit 1)" in capsys.readouterr().err

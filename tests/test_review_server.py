"""The review server (Flask test client): items, marks, clips by item id only, clear errors."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pandas as pd
import pytest

from conftest import REPO
from soundclf import cli
from soundclf.review.items import ReviewError
from soundclf.review.server import create_app
from soundclf.review.store import COLUMNS, MarksFileError, read_marks


@pytest.fixture
def items(review_set):
    return pd.read_csv(review_set / "items.csv", dtype={"item": str})


@pytest.fixture
def client(review_set):
    return create_app(review_set, "ana").test_client()


def post(client, **body):
    return client.post("/api/marks", json=body)


def test_the_page_and_its_own_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and b'src="/static/review.js"' in page.data
    assert client.get("/static/review.js").mimetype == "text/javascript"
    assert client.get("/static/review.css").status_code == 200


def test_items_come_with_the_review_set_and_marks(client, items):
    data = client.get("/api/items").get_json()
    assert data["reviewer"] == "ana" and data["review"]["classes"] == ["owl", "wren", "lark"]
    assert [i["item"] for i in data["items"]] == items["item"].tolist()
    assert data["items"][0]["item"] == "000000001234"  # an id made of digits stays a string
    assert set(data["items"][0]) >= {"file", "start", "end", "label", "score", "bin", "clip_start", "clip_end"}
    assert data["marks"] == {}


def test_a_mark_is_stored_before_it_is_answered_and_latest_wins(client, review_set, items):
    item = items["item"][1]
    answer = post(client, item=item, mark="yes", note="faint, far")
    assert answer.status_code == 200
    stored = answer.get_json()["mark"]
    assert stored["mark"] == "yes" and stored["reviewer"] == "ana" and stored["file"] == items["file"][1]
    on_disk = read_marks(review_set / "marks.csv")
    assert on_disk[["item", "mark", "note", "start"]].values.tolist() == [[item, "yes", "faint, far", items["start"][1]]]
    assert client.get("/api/marks").get_json()["marks"][item]["mark"] == "yes"
    post(client, item=item, mark="other", other_label=" lark ")
    assert client.get("/api/marks").get_json()["marks"][item]["other_label"] == "lark"
    post(client, item=item, mark="cleared")
    assert client.get("/api/marks").get_json()["marks"] == {}
    assert read_marks(review_set / "marks.csv")["mark"].tolist() == ["yes", "other", "cleared"]


def test_bad_marks_are_refused_and_nothing_is_written(client, review_set, items):
    item = items["item"][0]
    for body in [{"item": "nope", "mark": "yes"}, {"item": item, "mark": "maybe"}, {"item": item},
                 {"item": item, "mark": "yes", "note": "x" * 3000}, {"item": item, "mark": "yes", "note": 5},
                 {"item": ["a"], "mark": "yes"}]:
        answer = client.post("/api/marks", json=body)
        assert answer.status_code == 400 and answer.get_json()["error"], body
    form = client.post("/api/marks", data={"item": item, "mark": "yes"})  # a cross-site form cannot mark
    assert form.status_code == 400
    assert not (review_set / "marks.csv").exists()


def test_two_tabs_and_two_servers_converge_through_the_file(review_set, items):
    a, b = create_app(review_set, "ana").test_client(), create_app(review_set, "ben").test_client()
    post(a, item=items["item"][0], mark="yes")
    post(b, item=items["item"][1], mark="no")
    for client in (a, b):
        marks = client.get("/api/marks").get_json()["marks"]
        assert {k: v["mark"] for k, v in marks.items()} == {items["item"][0]: "yes", items["item"][1]: "no"}
        assert marks[items["item"][1]]["reviewer"] == "ben"


def test_clips_are_served_by_item_id_with_ranges(client, review_set, items):
    item = items["item"][2]
    wav = client.get(f"/clips/{item}.wav")
    assert wav.status_code == 200 and wav.mimetype == "audio/wav"
    assert wav.data == (review_set / "clips" / f"{item}.wav").read_bytes()
    part = client.get(f"/clips/{item}.wav", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and len(part.data) == 100 and part.headers["Content-Range"].startswith("bytes 100-199/")
    assert client.get(f"/clips/{item}.png").mimetype == "image/png"


@pytest.mark.parametrize("url", [
    "/clips/../items.csv", "/clips/%2e%2e%2fmarks.csv", "/clips/..%2fitems.csv", "/static/../../x",
    "/static/..%2f..%2fpyproject.toml", "/static/%2fetc%2fpasswd", "/clips//etc/passwd", "/clips/%2fetc%2fpasswd.wav",
    "/clips/unknown.wav", "/clips/000000001234.csv", "/clips/000000001234", "/clips/000000001234.wav/x",
    "/items.csv", "/marks.csv", "/review.json", "/static/index.html/..", "/static/server.py", "/api/nothing",
])
def test_no_url_reaches_a_file_beside_the_clips(client, review_set, url):
    (review_set / "marks.csv").write_text(",".join(COLUMNS) + "\n")
    assert client.get(url).status_code == 404, url


def test_a_missing_clip_is_404_not_a_crash(client, review_set, items):
    (review_set / "clips" / f"{items['item'][3]}.png").unlink()
    assert client.get(f"/clips/{items['item'][3]}.png").status_code == 404


def test_marks_of_items_gone_from_items_csv_are_kept_but_not_shown(review_set, client, items):
    (review_set / "marks.csv").write_text(",".join(COLUMNS) + "\n"
                                          "2025-05-01T06:30:00Z,ana,feedfeedfeed,old.wav,1,6,owl,yes,,\n")
    client = create_app(review_set, "ana").test_client()
    assert client.get("/api/items").get_json()["marks"] == {}
    post(client, item=items["item"][0], mark="no")
    assert read_marks(review_set / "marks.csv")["item"].tolist() == ["feedfeedfeed", items["item"][0]]


def test_a_corrupt_marks_file_stops_the_start_and_a_later_edit_is_reported(review_set, client, items):
    path = review_set / "marks.csv"
    post(client, item=items["item"][0], mark="yes")
    path.write_bytes(path.read_bytes() + b"2025-05-01T06:30:00Z,ana,x,f,1,2,owl,maybe,,\n")  # a hand edit, running
    answer = client.get("/api/marks")
    assert answer.status_code == 500 and "line 3" in answer.get_json()["error"]
    with pytest.raises(MarksFileError, match="delete or repair line 3"):
        create_app(review_set, "ana")
    torn = path.read_bytes()[:-1]
    path.write_bytes(torn)
    answer = post(client, item=items["item"][1], mark="no")
    assert answer.status_code == 500 and "does not end with a newline" in answer.get_json()["error"]
    assert path.read_bytes() == torn


def test_a_folder_without_items_names_the_target_to_run(tmp_path):
    with pytest.raises(ReviewError, match=r"snakemake results/review/dusk/items.csv"):
        create_app(tmp_path / "results/review/dusk", "ana")


def test_the_cli_names_a_port_in_use_and_never_takes_another(review_set, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit) as stop:
            cli.main(["review", str(review_set), "--port", str(port), "--no-browser"])
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert f"port {port}" in err and "--port" in err


def test_the_cli_reports_a_corrupt_marks_file_and_a_bad_folder(review_set, tmp_path, capsys):
    (review_set / "marks.csv").write_text("nonsense\n")
    with pytest.raises(SystemExit):
        cli.main(["review", str(review_set), "--no-browser"])
    assert "marks.csv: line 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["review", str(tmp_path / "nowhere"), "--no-browser"])
    assert "snakemake results/review/nowhere/items.csv" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["review", str(review_set), "--port", "70000"])
    assert "--port 70000" in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(review_dir, port):
    """`python -m soundclf.cli review` as a person runs it; returns once it answers."""
    proc = subprocess.Popen([sys.executable, "-m", "soundclf.cli", "review", str(review_dir), "--port", str(port),
                             "--no-browser", "--reviewer", "ana"], env=dict(os.environ, PYTHONPATH=str(REPO / "src")),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/marks", timeout=1)
            return proc
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(f"the server stopped: {proc.stdout.read()}")
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("the server did not answer within 20 s")


def test_a_mark_answered_survives_kill_9_of_the_server(review_set, items):
    port = free_port()
    proc = start_server(review_set, port)
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/marks", method="POST",
                                         data=json.dumps({"item": items["item"][4], "mark": "unsure"}).encode(),
                                         headers={"Content-Type": "application/json"})
        assert json.load(urllib.request.urlopen(request, timeout=5))["mark"]["mark"] == "unsure"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert read_marks(review_set / "marks.csv")["mark"].tolist() == ["unsure"]
    proc = start_server(review_set, port)  # the same port is free again at once
    try:
        marks = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/marks", timeout=5))["marks"]
        assert marks[items["item"][4]]["mark"] == "unsure"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

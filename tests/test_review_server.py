"""The review server (Flask test client): items, marks under each reviewer's name, clips by item
id only, a token and a Host check before anything, clear errors."""
import fcntl
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO
from soundclf import cli
from soundclf.review.items import ReviewError
from soundclf.review.server import MAX_NAME, MAX_REQUEST, TOKEN_HEADER, allowed_hosts, create_app
from soundclf.review.store import COLUMNS, MarksFileError, append_mark, read_marks

TOKEN = "the-token-of-the-printed-url"


@pytest.fixture
def items(review_set):
    return pd.read_csv(review_set / "items.csv", dtype={"item": str})


def app_client(review_dir, reviewer="ana", token=TOKEN):
    """A test client of the server over review_dir that sends `token` as the page does (None:
    none); the test client's requests come with 'Host: localhost'."""
    client = create_app(review_dir, reviewer, TOKEN, {"localhost"}).test_client()
    if token is not None:
        client.environ_base["HTTP_" + TOKEN_HEADER.upper().replace("-", "_")] = token
    return client


@pytest.fixture
def client(review_set):
    return app_client(review_set)


def post(client, reviewer="ana", **body):
    return client.post("/api/marks", json={"reviewer": reviewer, **body})


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
    a, b = app_client(review_set, "ana"), app_client(review_set, "ben")
    post(a, item=items["item"][0], mark="yes")
    post(b, "ben", item=items["item"][1], mark="no")
    for client in (a, b):
        marks = client.get("/api/marks").get_json()["marks"]
        assert {k: v["mark"] for k, v in marks.items()} == {items["item"][0]: "yes", items["item"][1]: "no"}
        assert marks[items["item"][1]]["reviewer"] == "ben"


def test_two_reviewers_on_one_server_are_recorded_apart(client, review_set, items):
    assert post(client, "ana", item=items["item"][0], mark="yes").get_json()["mark"]["reviewer"] == "ana"
    assert post(client, " ben ", item=items["item"][1], mark="no").status_code == 200  # the name as the page sends it
    assert read_marks(review_set / "marks.csv")["reviewer"].tolist() == ["ana", "ben"]
    marks = client.get("/api/marks").get_json()["marks"]
    assert {k: v["reviewer"] for k, v in marks.items()} == {items["item"][0]: "ana", items["item"][1]: "ben"}
    assert client.get("/api/items").get_json()["reviewer"] == "ana"  # what the page offers: --reviewer


@pytest.mark.parametrize("name", [None, "", "   ", 5, "x" * (MAX_NAME + 1), "ana\nben", "ana\r", "a\tb", "a\x00",
                                  "\x1b[31mana", "ana\u2028ben", "ana\x85"])
def test_a_reviewers_name_is_one_short_line_of_text(client, review_set, items, name):
    answer = post(client, name, item=items["item"][0], mark="yes")
    assert answer.status_code == 400 and "name" in answer.get_json()["error"]
    assert not (review_set / "marks.csv").exists()


def test_a_name_of_any_script_up_to_the_limit_is_kept_as_sent(client, review_set, items):
    names = ["Zoë Ñúñez-Łódź", "鈴木 花子", "y" * MAX_NAME]
    for k, name in enumerate(names):
        assert post(client, name, item=items["item"][k], mark="no").status_code == 200
    assert read_marks(review_set / "marks.csv")["reviewer"].tolist() == names


def test_a_write_without_the_token_or_from_a_foreign_host_is_refused(review_set, items):
    item = items["item"][0]
    for client in (app_client(review_set, token=None), app_client(review_set, token="guessed"),
                   app_client(review_set, token="ümlaut")):  # not ASCII: still a plain 403
        answer = post(client, item=item, mark="yes")
        assert answer.status_code == 403 and "token" in answer.get_json()["error"]
        for url in ("/api/items", "/api/marks", f"/clips/{item}.wav", f"/clips/{item}.png"):  # reads too
            assert client.get(url).status_code == 403, url
    client = app_client(review_set)
    rebound = client.post("/api/marks", json={"reviewer": "eve", "item": item, "mark": "no"},
                          headers={"Host": "rebound.example:8765"})  # DNS rebinding: the token alone is not enough
    assert rebound.status_code == 403 and "rebound.example" in rebound.get_json()["error"]
    assert not (review_set / "marks.csv").exists()
    assert post(client, item=item, mark="yes").status_code == 200
    assert read_marks(review_set / "marks.csv")["reviewer"].tolist() == ["ana"]


def test_the_page_is_served_without_the_token_and_clips_take_it_in_the_query(review_set, items):
    anyone = app_client(review_set, token=None)  # the page reads its token from its own address
    assert anyone.get("/").status_code == 200 and anyone.get("/static/review.js").status_code == 200
    clip = anyone.get(f"/clips/{items['item'][0]}.png?token={TOKEN}")  # an <img> cannot send a header
    assert clip.status_code == 200 and clip.data


def test_the_hosts_answered_are_this_machines_and_the_bound_one():
    assert allowed_hosts("127.0.0.1", 8765) == {"127.0.0.1:8765", "localhost:8765"}
    assert allowed_hosts("Lab-Box.example", 9000) == {"127.0.0.1:9000", "localhost:9000", "lab-box.example:9000"}
    assert "[::1]:8765" in allowed_hosts("::1", 8765)
    assert f"{socket.gethostname().lower()}:8765" in allowed_hosts("0.0.0.0", 8765)  # what others type


def test_an_oversized_request_is_refused_with_413(client, review_set, items):
    answer = post(client, item=items["item"][0], mark="yes", note="x" * MAX_REQUEST)
    assert answer.status_code == 413 and "KiB" in answer.get_json()["error"]
    assert not (review_set / "marks.csv").exists()


def test_a_read_of_the_marks_waits_for_a_write_under_way(client, review_set, items):
    path = review_set / "marks.csv"
    append_mark(path, reviewer="ana", item=items["item"][0], file="f.wav", start=1, end=2, label="owl", mark="yes")
    line = f"2025-05-01T06:30:00Z,ben,{items['item'][1]},f.wav,3.0,4.0,owl,no,,\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    answers = []
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a writer (append_mark of another thread or server) holds the file
        os.write(fd, line[:20])  # half a line on disk
        reader = threading.Thread(target=lambda: answers.append(client.get("/api/marks")))
        reader.start()
        reader.join(0.5)
        assert reader.is_alive()  # the read waits for the writer's lock
        os.write(fd, line[20:])
    finally:
        os.close(fd)  # the lock goes with it
    reader.join(10)
    assert answers[0].status_code == 200
    assert {k: v["mark"] for k, v in answers[0].get_json()["marks"].items()} == {items["item"][0]: "yes",
                                                                                items["item"][1]: "no"}


def test_a_relative_folder_serves_its_clips_wherever_the_command_goes_next(review_set, items, monkeypatch, tmp_path):
    monkeypatch.chdir(review_set.parent)
    client = app_client(Path(review_set.name))  # `soundclf review demo`, typed in its parent folder
    monkeypatch.chdir(tmp_path)  # the paths were resolved once, when the server started
    for kind in ("wav", "png"):
        answer = client.get(f"/clips/{items['item'][0]}.{kind}")
        assert answer.status_code == 200 and len(answer.data) > 0
        assert answer.data == (review_set / "clips" / f"{items['item'][0]}.{kind}").read_bytes()
    assert client.get("/api/items").get_json()["review"]["name"] == "demo"


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
    client = app_client(review_set)
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
        create_app(review_set, "ana", TOKEN, {"localhost"})
    torn = path.read_bytes()[:-1]
    path.write_bytes(torn)
    answer = post(client, item=items["item"][1], mark="no")
    assert answer.status_code == 500 and "does not end with a newline" in answer.get_json()["error"]
    assert path.read_bytes() == torn


def test_a_folder_without_items_names_the_target_to_run(tmp_path):
    with pytest.raises(ReviewError, match=r"snakemake results/review/dusk/items.csv"):
        create_app(tmp_path / "results/review/dusk", "ana", TOKEN, {"localhost"})


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
    with pytest.raises(SystemExit):
        cli.main(["review", str(review_set), "--reviewer", "ana\nben", "--no-browser"])
    assert "--reviewer: a reviewer's name is one line" in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def printed_token(proc) -> str:
    """The token of the URL `soundclf review` prints (http://localhost:PORT/?token=...)."""
    for line in proc.stdout:
        if found := re.search(r"http://\S+/\?token=(\S+)", line):
            return found.group(1)
    raise AssertionError(f"the server stopped before printing its URL (exit {proc.wait()})")


def start_server(review_dir, port, cwd=None):
    """`python -m soundclf.cli review` as a person runs it (in `cwd`); returns it and the token of
    the URL it printed, once it answers."""
    proc = subprocess.Popen([sys.executable, "-m", "soundclf.cli", "review", str(review_dir), "--port", str(port),
                             "--no-browser", "--reviewer", "ana"], env=dict(os.environ, PYTHONPATH=str(REPO / "src")),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd)
    token = printed_token(proc)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(api_request(port, token, "marks"), timeout=1)
            return proc, token
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(f"the server stopped: {proc.stdout.read()}")
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("the server did not answer within 20 s")


def api_request(port, token, path, body=None, host=None):
    """A request to the API of the server on `port` as the page sends it (its token, JSON)."""
    headers = {TOKEN_HEADER: token, "Content-Type": "application/json", **({"Host": host} if host else {})}
    return urllib.request.Request(f"http://127.0.0.1:{port}/api/{path}", headers=headers,
                                  data=None if body is None else json.dumps(body).encode())


def test_a_mark_answered_survives_kill_9_of_the_server(review_set, items):
    port = free_port()
    proc, token = start_server(review_set, port)
    try:
        request = api_request(port, token, "marks", {"reviewer": "ana", "item": items["item"][4], "mark": "unsure"})
        assert json.load(urllib.request.urlopen(request, timeout=5))["mark"]["mark"] == "unsure"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert read_marks(review_set / "marks.csv")["mark"].tolist() == ["unsure"]
    proc, token = start_server(review_set, port)  # the same port is free again at once
    try:
        marks = json.load(urllib.request.urlopen(api_request(port, token, "marks"), timeout=5))["marks"]
        assert marks[items["item"][4]]["mark"] == "unsure"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_the_command_typed_in_the_docs_serves_clips_to_its_token_and_host_only(review_set, items):
    port = free_port()
    root = review_set.parent.parent  # the command runs here, with the folder's path relative
    proc, token = start_server(Path(review_set.relative_to(root)), port, cwd=root)
    item = items["item"][0]
    try:
        for kind in ("wav", "png"):
            clip = urllib.request.urlopen(f"http://127.0.0.1:{port}/clips/{item}.{kind}?token={token}", timeout=5)
            assert clip.status == 200 and len(clip.read()) > 0
        mark = {"reviewer": "ben", "item": item, "mark": "yes"}
        for request in (api_request(port, "", "marks", mark),
                        api_request(port, token, "marks", mark, host=f"evil.example:{port}")):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=5)
            assert refused.value.code == 403
        answer = urllib.request.urlopen(api_request(port, token, "marks", mark, host=f"localhost:{port}"), timeout=5)
        assert answer.status == 200 and json.load(answer)["mark"]["reviewer"] == "ben"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

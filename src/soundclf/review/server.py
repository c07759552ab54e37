"""The review page's local web server: one review set folder, one person's marks.

    soundclf review results/review/<name>/

GET / is the page (static/); GET /api/items gives the items, review.json and the current
marks; GET /api/marks the current marks (the page polls it, so two tabs converge); POST
/api/marks appends one mark to marks.csv (store.py) and answers only once it is on disk;
GET /clips/<item>.wav and .png serve an item's clip and spectrogram. A URL never names a
path: clips are looked up by item id in items.csv and the page's files by name, and anything
else is 404. It binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import socket
import threading
import webbrowser
from pathlib import Path
from typing import Any

import pandas as pd
from flask import Flask, abort, jsonify, request, send_file
from werkzeug.serving import get_sockaddr, make_server, select_address_family

from .items import ReviewError, read_items
from .store import MARKS, MARKS_FILE, MarksFileError, append_mark, read_marks

STATIC = Path(__file__).parent / "static"
PAGE_FILES = {"review.js": "text/javascript", "review.css": "text/css"}
# what the page gets of an item (not its path on disk)
PAGE_COLUMNS = ["item", "file", "start", "end", "label", "score", "bin", "drawn_by", "site", "clip_start", "clip_end"]
CLIP_KINDS = {"wav": "audio/wav", "png": "image/png"}
MAX_TEXT = 2000  # characters of a note or an other species


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value.item() if hasattr(value, "item") else value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: _json_value(v) for k, v in row.items()} for row in frame.to_dict("records")]


class _Marks:
    """marks.csv's current marks, read again whenever the file changed (a hand edit, another
    server on the same folder, a mark just appended)."""

    def __init__(self, path: Path):
        self.path = path
        self.lock = threading.Lock()
        self.stamp: tuple | None = None
        self.current: dict[str, dict[str, Any]] = {}
        self.read()

    def read(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            try:
                st = self.path.stat()
                stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
            except FileNotFoundError:
                stamp = None
            if stamp != self.stamp:
                current: dict[str, dict[str, Any]] = {}
                for row in _records(read_marks(self.path)):  # latest wins; 'cleared' unmarks
                    current.pop(row["item"], None)
                    if row["mark"] != "cleared":
                        current[row["item"]] = row
                self.current, self.stamp = current, stamp
            return self.current


def create_app(review_dir: str | Path, reviewer: str) -> Flask:
    """The Flask app over one review set folder; reads items.csv and marks.csv now (ReviewError,
    MarksFileError)."""
    review_dir = Path(review_dir)
    items = read_items(review_dir)
    meta_path = review_dir / "review.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    meta.setdefault("name", review_dir.resolve().name)
    meta.setdefault("classes", sorted(items["label"].unique().tolist()))
    item_rows = _records(items[PAGE_COLUMNS])
    by_id = {row["item"]: row for row in item_rows}
    clips = {(row["item"], kind): review_dir / "clips" / f"{row['item']}.{kind}" for row in item_rows for kind in CLIP_KINDS}
    marks = _Marks(review_dir / MARKS_FILE)

    app = Flask(__name__, static_folder=None)
    app.json.sort_keys = False

    def shown_marks() -> dict[str, dict[str, Any]]:
        return {item: row for item, row in marks.read().items() if item in by_id}

    @app.errorhandler(MarksFileError)
    def marks_file_error(e):
        return jsonify(error=str(e)), 500

    @app.get("/")
    def page():
        return send_file(STATIC / "index.html", mimetype="text/html", max_age=0)

    @app.get("/static/<name>")
    def static_file(name: str):
        if name not in PAGE_FILES:
            abort(404)
        return send_file(STATIC / name, mimetype=PAGE_FILES[name], max_age=0)

    @app.get("/api/items")
    def api_items():
        return jsonify(review=meta, reviewer=reviewer, items=item_rows, marks=shown_marks())

    @app.get("/api/marks")
    def api_marks():
        return jsonify(marks=shown_marks())

    @app.post("/api/marks")
    def api_post_mark():
        body = request.get_json(silent=True) if request.is_json else None  # JSON only: no cross-site form posts
        if not isinstance(body, dict):
            return jsonify(error="send a JSON object {item, mark, other_label?, note?}"), 400
        item, mark = body.get("item"), body.get("mark")
        if not isinstance(item, str) or item not in by_id:
            return jsonify(error=f"unknown item {item!r}"), 400
        if mark not in MARKS:
            return jsonify(error=f"mark {mark!r} is not one of {', '.join(MARKS)}"), 400
        text = {key: body.get(key) or "" for key in ("other_label", "note")}
        for key, value in text.items():
            if not isinstance(value, str) or len(value) > MAX_TEXT or "\x00" in value:
                return jsonify(error=f"{key} must be a text of at most {MAX_TEXT} characters"), 400
        if mark != "other":
            text["other_label"] = ""
        row = by_id[item]
        try:
            stored = append_mark(review_dir / MARKS_FILE, reviewer=reviewer, item=item, file=row["file"],
                                 start=row["start"], end=row["end"], label=row["label"], mark=mark,
                                 other_label=text["other_label"].strip(), note=text["note"])
        except OSError as e:
            return jsonify(error=f"could not write {review_dir / MARKS_FILE}: {e}"), 500
        return jsonify(mark=stored)

    @app.get("/clips/<name>")
    def clip(name: str):
        item, _, kind = name.rpartition(".")
        path = clips.get((item, kind))  # only an item of items.csv: the URL is never a path
        if path is None or not path.is_file():
            abort(404)
        return send_file(path, mimetype=CLIP_KINDS[kind], conditional=True, max_age=0)

    return app


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or ReviewError naming the port and --port."""
    family = select_address_family(host, port)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart reuses the port at once
        sock.bind(get_sockaddr(host, port, family))
        sock.listen(128)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise ReviewError(f"port {port} on {host} is in use (another review page?); "
                              "stop that, or choose another port with --port") from None
        raise ReviewError(f"cannot listen on {host}:{port}: {e.strerror or e}; check --host and --port") from None
    return sock


def serve(review_dir: str | Path, host: str = "127.0.0.1", port: int = 8765, reviewer: str = "",
          open_browser: bool = False) -> None:
    """Serve the review page until interrupted. A port in use is an error (never another port)."""
    app = create_app(review_dir, reviewer)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request: the page polls
    with _listen(host, port) as sock:  # werkzeug would exit with its own words: bind here
        server = make_server(host, port, app, threaded=True, fd=sock.fileno())
    url = f"http://{'localhost' if host in ('127.0.0.1', '::1', 'localhost') else host}:{server.port}/"
    print(f"Reviewing {Path(review_dir)} as {reviewer} at {url} (marks go to {Path(review_dir) / MARKS_FILE}); "
          "Ctrl-C stops", flush=True)
    if open_browser:
        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()

"""The review page's local web server: one review set folder, the marks of whoever reviews it.

    soundclf review results/review/<name>/

GET / is the page (static/); GET /api/items gives the items, review.json, the name the page
offers its reviewer and the current marks; GET /api/marks the current marks (the page polls
it, so two tabs converge); POST /api/marks appends one mark, under the reviewer's name the page
sends, to marks.csv (store.py) and answers only once it is on disk; GET /clips/<item>.wav and
.png serve an item's clip and spectrogram. A URL never names a path: clips are looked up by
item id in items.csv and the page's files by name, and anything else is 404.

Only the person who started it can read or write: it binds 127.0.0.1 unless told otherwise,
every request but the page's own files must carry the random token of the URL the command
prints (as Jupyter's), and a request whose Host header is not this server's is refused, so that
another user of a shared machine, or a web page whose name was made to point here (DNS
rebinding), gets 403.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import math
import os
import secrets
import socket
import threading
import unicodedata
import webbrowser
from collections.abc import Collection, Iterator
from contextlib import contextmanager
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
MAX_NAME = 100  # characters of a reviewer's name (static/index.html's name field says the same)
# bytes of a request body: a mark with both texts at MAX_TEXT, every character JSON-escaped as a
# surrogate pair, stays under it; anything larger is not a mark
MAX_REQUEST = 64 * 1024
TOKEN_HEADER = "X-Review-Token"
PUBLIC_ENDPOINTS = {"page", "static_file"}  # they hold nothing of the review set
LOOPBACK = ("127.0.0.1", "localhost", "::1")
WILDCARDS = ("0.0.0.0", "::", "")
# a name is one line of a marks.csv column: no control character, line or paragraph separator,
# nor a lone surrogate (it cannot be written as UTF-8)
NAME_REFUSED = {"Cc", "Cs", "Zl", "Zp"}


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value.item() if hasattr(value, "item") else value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: _json_value(v) for k, v in row.items()} for row in frame.to_dict("records")]


def reviewer_problem(name: Any) -> str | None:
    """Why `name` cannot be a reviewer's name in marks.csv, or None when it can: the file says
    who marked what, so a name is one short line of text, never empty."""
    if not isinstance(name, str) or not name.strip():
        return "say who is marking: the reviewer's name is empty"
    if len(name.strip()) > MAX_NAME:
        return f"a reviewer's name is at most {MAX_NAME} characters"
    if any(unicodedata.category(c) in NAME_REFUSED for c in name):
        return "a reviewer's name is one line of text, without control characters"
    return None


@contextmanager
def _shared_lock(path: Path) -> Iterator[tuple | None]:
    """marks.csv held under a shared flock, yielding its stamp (inode, size, mtime), or None
    when there is no file. append_mark writes under an exclusive flock of the same file, so a
    read inside never sees half a line, whether this server or another process is writing."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        fd = None
    if fd is None:
        yield None
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        st = os.fstat(fd)
        yield st.st_ino, st.st_size, st.st_mtime_ns
    finally:
        os.close(fd)  # releases the lock


class _Marks:
    """marks.csv's current marks, read again whenever the file changed (a hand edit, another
    server on the same folder, a mark just appended)."""

    def __init__(self, path: Path):
        self.path = path
        self.lock = threading.Lock()  # one thread at a time renews the copy below
        self.stamp: tuple | None = None
        self.current: dict[str, dict[str, Any]] = {}
        self.read()

    def read(self) -> dict[str, dict[str, Any]]:
        with self.lock, _shared_lock(self.path) as stamp:
            if stamp != self.stamp:
                current: dict[str, dict[str, Any]] = {}
                for row in _records(read_marks(self.path)) if stamp else []:  # latest wins; 'cleared' unmarks
                    current.pop(row["item"], None)
                    if row["mark"] != "cleared":
                        current[row["item"]] = row
                self.current, self.stamp = current, stamp
            return self.current


def _bracketed(host: str) -> str:
    """host as a URL and a Host header write it: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host


def allowed_hosts(host: str, port: int) -> frozenset[str]:
    """The Host headers the server answers: 127.0.0.1:port, localhost:port and the address it
    is bound to; bound to every address (0.0.0.0, ::), the machine's own names too, which is
    what others on the network type. A page whose name was made to point here (DNS rebinding)
    sends its own name and is refused."""
    names = {"127.0.0.1", "localhost", host}
    if host in WILDCARDS:
        names |= {socket.gethostname(), socket.getfqdn()}
    return frozenset(f"{_bracketed(name)}:{port}".lower() for name in names if name)


def _sent_token() -> str:
    """The token a request carries: the page's API calls send it in the header, its <audio> and
    <img> (which cannot send headers) in the query."""
    return request.headers.get(TOKEN_HEADER) or request.args.get("token", "")


def _refusal(token: str, hosts: Collection[str]) -> str | None:
    """Why this request is refused (403), or None: a Host that is not this server's, or a
    missing or wrong token outside the page's own files."""
    if request.host.lower() not in hosts:
        return f"this server answers {', '.join(sorted(hosts))}, not '{request.host}'"
    sent = _sent_token().encode("utf-8", "replace")  # compare_digest takes ASCII text only
    if request.endpoint not in PUBLIC_ENDPOINTS and not secrets.compare_digest(sent, token.encode()):
        return ("this page's token is not the review server's (was it restarted?): open the address with "
                "?token= that soundclf review printed")
    return None


def create_app(review_dir: str | Path, reviewer: str, token: str, hosts: Collection[str]) -> Flask:
    """The Flask app over one review set folder; reads items.csv and marks.csv now (ReviewError,
    MarksFileError). `reviewer` is the name the page offers, `token` what every request but the
    page's own files carries, `hosts` the Host headers it answers (allowed_hosts)."""
    # absolute once: a clip is <folder>/clips/<item>.<kind> (clips.write_clips), and send_file
    # would resolve a relative path against this package, not the folder the command ran in
    review_dir = Path(review_dir).resolve()
    items = read_items(review_dir)
    meta_path = review_dir / "review.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    meta.setdefault("name", review_dir.name)
    meta.setdefault("classes", sorted(items["label"].unique().tolist()))
    item_rows = _records(items[PAGE_COLUMNS])
    by_id = {row["item"]: row for row in item_rows}
    clips = {(row["item"], kind): review_dir / "clips" / f"{row['item']}.{kind}" for row in item_rows for kind in CLIP_KINDS}
    marks = _Marks(review_dir / MARKS_FILE)
    hosts = frozenset(h.lower() for h in hosts)

    app = Flask(__name__, static_folder=None)
    app.json.sort_keys = False
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST

    def shown_marks() -> dict[str, dict[str, Any]]:
        return {item: row for item, row in marks.read().items() if item in by_id}

    @app.before_request
    def guard():
        refused = _refusal(token, hosts)
        return (jsonify(error=refused), 403) if refused else None

    @app.errorhandler(MarksFileError)
    def marks_file_error(e):
        return jsonify(error=str(e)), 500

    @app.errorhandler(413)
    def too_large(e):
        return jsonify(error=f"a request is at most {MAX_REQUEST // 1024} KiB; a mark is far smaller"), 413

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
            return jsonify(error="send a JSON object {reviewer, item, mark, other_label?, note?}"), 400
        item, mark, name = body.get("item"), body.get("mark"), body.get("reviewer")
        if problem := reviewer_problem(name):
            return jsonify(error=problem), 400
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
            stored = append_mark(review_dir / MARKS_FILE, reviewer=name.strip(), item=item, file=row["file"],
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


def _url_host(host: str) -> str:
    """The name to put in the printed URL: localhost for this machine only, the machine's name
    when bound to every address (what others type), else the address bound."""
    if host in LOOPBACK:
        return "localhost"
    return socket.gethostname() if host in WILDCARDS else _bracketed(host)


def serve(review_dir: str | Path, host: str = "127.0.0.1", port: int = 8765, reviewer: str = "",
          open_browser: bool = False) -> None:
    """Serve the review page until interrupted; `reviewer` is the name the page offers. A port
    in use is an error (never another port). The token is new at each start."""
    token = secrets.token_urlsafe(32)
    review_dir = Path(review_dir).resolve()
    app = create_app(review_dir, reviewer, token, allowed_hosts(host, port))
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request: the page polls
    with _listen(host, port) as sock:  # werkzeug would exit with its own words: bind here
        server = make_server(host, port, app, threaded=True, fd=sock.fileno())
    url = f"http://{_url_host(host)}:{server.port}/?token={token}"
    print(f"Reviewing {review_dir} (marks go to {review_dir / MARKS_FILE}); open\n    {url}\n"
          f"The page asks each reviewer's name, offering {reviewer}; Ctrl-C stops", flush=True)
    if open_browser:
        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()

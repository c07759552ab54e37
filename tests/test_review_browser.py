"""The review page in a real browser (Debian's Chromium through Playwright): the name asked on
first use, play, mark by keyboard, reload, kill -9 the server mid-review, restart (a new token),
export; a second reviewer's tab converges and is recorded apart.

SOUNDCLF_SCREENSHOT=1 writes the page's screenshot to docs/images/review_page.png."""
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO, write_review_set
from soundclf.review.server import TOKEN_HEADER
from soundclf.review.store import export_marks, read_marks
from test_review_server import printed_token

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required"]

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium "
                                                                "(apt-get install chromium; .ci/run installs it)")]


class Server:
    """`python -m soundclf.cli review DIR --port P --no-browser --reviewer ana`, as a person runs
    it; its addresses carry the token it printed at its last start."""

    def __init__(self, review_dir: Path):
        self.review_dir = review_dir
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self.token = ""
        self.proc = None

    @property
    def asking(self) -> str:
        """The printed address (the page polls every 0.3 s instead of 3): the page asks who marks."""
        return f"{self.url}?token={self.token}&poll=300"

    @property
    def page(self) -> str:
        """The address as a link made for ana: the page marks as ana at once."""
        return self.asking + "&reviewer=ana"

    def start(self):
        self.proc = subprocess.Popen([sys.executable, "-m", "soundclf.cli", "review", str(self.review_dir), "--port",
                                      str(self.port), "--no-browser", "--reviewer", "ana"],
                                     env=dict(os.environ, PYTHONPATH=str(REPO / "src")),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.token = printed_token(self.proc)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(urllib.request.Request(self.url + "api/marks",
                                                              headers={TOKEN_HEADER: self.token}), timeout=1)
                return
            except OSError:
                assert self.proc.poll() is None, f"the server stopped: {self.proc.stderr.read()}"
                time.sleep(0.05)
        raise AssertionError("the review server did not answer within 20 s")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = Server(write_review_set(tmp_path_factory.mktemp("review") / "dawn", n_items=9))
    server.start()
    yield server
    server.kill9()


def marked(page) -> int:
    """How many items the page counts as marked (its progress table's total row)."""
    return int(page.locator("#progress tr.total td").nth(1).inner_text().split("/")[0])


def current(page) -> str:
    return page.evaluate("state.current")


def open_page(browser, server, name=None):
    """A new browser (no name kept yet) on the printed address, `name` answering who is marking;
    without a name, on the link made for ana, which asks nothing."""
    page = browser.new_context(viewport={"width": 1200, "height": 760}).new_page()
    page.goto(server.asking if name else server.page)
    page.wait_for_function("state.items.length > 0 && state.current")
    if name is None:
        assert page.locator("#name-form").is_hidden() and page.evaluate("state.name") == "ana"
        return page
    assert page.locator("#name-input").is_visible() and page.locator("#name-input").input_value() == "ana"  # offered
    page.locator("#name-input").fill(name)
    page.keyboard.press("Enter")
    page.wait_for_function(f"state.name === {name!r}")
    assert page.locator("#name-form").is_hidden() and page.locator("#reviewer").inner_text() == f"marking as {name}"
    return page


def test_playing_moves_the_cursor_over_the_spectrogram(browser, server):
    page = open_page(browser, server)
    box = page.evaluate("[document.getElementById('window-box').style.left, document.getElementById('window-box').style.width]")
    assert [float(v.rstrip("%")) for v in box] == pytest.approx([100 / 3, 100 / 3], abs=0.01)  # 1 s window in a 3 s clip
    # the server renders the spectrogram on the first request: wait for it, as a person would
    page.wait_for_function("(img => img.complete && img.naturalWidth > 0)(document.getElementById('spec-img'))",
                           timeout=15000)
    page.keyboard.press(" ")
    page.wait_for_function("document.getElementById('player').currentTime > 0.4", timeout=15000)
    first = float(page.evaluate("document.getElementById('cursor').style.left").rstrip("%"))
    page.wait_for_function(f"parseFloat(document.getElementById('cursor').style.left) > {first + 5}", timeout=15000)
    page.keyboard.press(" ")
    assert page.evaluate("document.getElementById('player').paused")
    page.context.close()


def test_no_mark_is_made_before_the_page_knows_who_marks(browser, server):
    page = browser.new_context().new_page()
    page.goto(server.asking)
    page.wait_for_function("state.items.length > 0 && state.current")
    assert not (server.review_dir / "marks.csv").exists()  # the first test marked nothing
    page.locator("#name-input").fill("  ")
    page.keyboard.press("Enter")
    assert "say who is marking" in page.locator("#name-problem").inner_text()
    page.keyboard.press("Escape")
    page.keyboard.press("y")
    page.wait_for_function("document.getElementById('status').textContent.includes('say who is marking first')")
    assert page.locator("#name-input").is_visible() and marked(page) == 0
    assert not (server.review_dir / "marks.csv").exists()
    page.context.close()


def test_marks_by_keyboard_survive_reload_kill_9_and_restart(browser, server, tmp_path):
    page = open_page(browser, server, "ana")
    assert not page.locator("#item-score").is_visible()  # the score is hidden until switched on
    done = []
    for k, key in enumerate(["y", "n", "u", "o", "y"], start=1):
        done.append(current(page))
        if key == "o":
            page.keyboard.press("o")
            page.keyboard.type("lark")  # the 'k' (previous) of 'lark' must not fire in the field
            page.keyboard.press("Enter")
        elif k == 5:
            page.locator("#note").click()
            page.keyboard.type("only one note, yes")  # no shortcut while typing
            page.keyboard.press("Escape")
            page.keyboard.press(key)
        else:
            page.keyboard.press(key)
        page.wait_for_function(f"document.querySelector('#progress tr.total td:nth-child(2)').textContent.startsWith('{k} /')")
        assert current(page) != done[-1]  # moved on to the next unmarked item
    events = read_marks(server.review_dir / "marks.csv")
    assert events["item"].tolist() == done and events["mark"].tolist() == ["yes", "no", "unsure", "other", "yes"]
    assert events["other_label"].tolist()[3] == "lark" and events["note"].tolist()[4] == "only one note, yes"

    page.keyboard.press("z")  # undo: back to the last mark, cleared
    page.wait_for_function("document.querySelector('#progress tr.total td:nth-child(2)').textContent.startsWith('4 /')")
    assert current(page) == done[4] and read_marks(server.review_dir / "marks.csv")["mark"].iloc[-1] == "cleared"
    page.keyboard.press("y")
    page.wait_for_function("document.querySelector('#progress tr.total td:nth-child(2)').textContent.startsWith('5 /')")

    page.reload()
    page.wait_for_function("state.items.length > 0")
    assert marked(page) == 5 and sorted(page.evaluate("Object.keys(state.marks)")) == sorted(done)
    assert page.locator("#name-form").is_hidden() and page.evaluate("state.name") == "ana"  # kept in the browser
    page.keyboard.press("k")
    assert "saved" in page.locator("#mark-state").inner_text()

    server.kill9()  # mid-review: the next mark fails visibly and is not counted
    page.keyboard.press("j")
    failing = current(page)
    page.keyboard.press("n")
    # the next clip fails to load too (the server is down): wait for the mark's own failure
    page.wait_for_function("document.getElementById('status').textContent.includes('NOT saved')")
    assert page.locator("#status").get_attribute("class") == "error"
    assert "NOT saved" in page.locator("#status").inner_text() and marked(page) == 5
    assert current(page) == failing and "not marked" in page.locator("#mark-state").inner_text()
    page.wait_for_function("!document.getElementById('banner').hidden", timeout=15000)  # the poll tells too
    server.start()  # with a new token: the open page says to open the new address
    page.wait_for_function("document.getElementById('banner').textContent.includes('?token=')", timeout=15000)
    page.goto(server.asking)
    page.wait_for_function("state.items.length > 0")
    page.wait_for_function("document.getElementById('banner').hidden", timeout=15000)
    assert marked(page) == 5 and sorted(page.evaluate("Object.keys(state.marks)")) == sorted(done)
    assert page.locator("#name-form").is_hidden()  # the same origin: the name is still known

    page.locator("#show-score").check()
    page.goto(server.asking + "#item=" + done[3])
    page.reload()  # the page opens at the item its address names
    page.wait_for_function(f"state.current === '{done[3]}'")
    page.wait_for_function("document.getElementById('spec-img').complete")
    page.evaluate("document.getElementById('player').currentTime = 1.4")  # the cursor inside the window
    page.wait_for_function("parseFloat(document.getElementById('cursor').style.left) > 40")
    shot = REPO / "docs/images/review_page.png" if os.environ.get("SOUNDCLF_SCREENSHOT") == "1" else tmp_path / "page.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=shot)
    assert page.locator("#item-score").is_visible()  # remembered across the reload (localStorage)
    page.context.close()

    marks = export_marks(server.review_dir, tmp_path / "marks.csv", tmp_path / "raven")
    table = pd.read_csv(tmp_path / "marks.csv", dtype={"item": str}, keep_default_na=False)
    assert sorted(table["item"]) == sorted(done) and len(marks) == 5
    row = table.set_index("item").loc[done[3]]
    raven = pd.read_csv(tmp_path / "raven" / f"{row['file']}.Table.1.selections.txt", sep="\t", keep_default_na=False)
    assert [["other", "lark", "ana"]] == raven.loc[raven["Item"] == done[3], ["Mark", "Other Species", "Reviewer"]].values.tolist()


def test_two_reviewers_see_each_others_marks_and_are_recorded_apart(browser, server):
    first, second = open_page(browser, server, "ana"), open_page(browser, server, "ben")
    first.locator("#filter-unmarked").check()
    second.locator("#filter-unmarked").check()
    second.keyboard.press("j")  # the two tabs mark different items
    a, b = current(first), current(second)
    assert a != b
    base = marked(first)
    first.keyboard.press("y")
    second.keyboard.press("n")
    for page in (first, second):  # each sees the other's after a poll
        page.wait_for_function(f"Object.keys(state.marks).length === {base + 2}", timeout=15000)
        assert page.evaluate(f"[state.marks['{a}'].mark, state.marks['{b}'].mark]") == ["yes", "no"]
    events = read_marks(server.review_dir / "marks.csv").set_index("item")
    assert sorted(events.index[-2:]) == sorted([a, b])
    assert [events.loc[a, "reviewer"], events.loc[b, "reviewer"]] == ["ana", "ben"]
    assert [first.evaluate(f"state.marks['{b}'].reviewer"), second.evaluate(f"state.marks['{a}'].reviewer")] == \
        ["ben", "ana"]
    first.context.close()
    second.context.close()

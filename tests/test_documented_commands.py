"""Every command the docs give runs as typed (issue 43, item 1).

The fenced shell blocks of README.md and docs/*.md are split into commands, and each runs from
the root of a fresh copy of the repository, relative paths included, as a reader who cloned it
would type it: for real where that is quick, as a dry run (-n) where the real run is too long
for CI, as a server (the review page) that must serve a clip, or not at all where CI cannot
(the container build, a real cluster). tests/documented_commands.yaml says which, with why: a
command it does not list runs for real, so a new command is never skipped silently.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO, write_review_set

pytestmark = pytest.mark.workflow

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LISTED = REPO / "tests/documented_commands.yaml"
# a fenced block of a shell language, at any indentation (a block inside a list item)
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>bash|sh|shell|console)[ \t]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
                   re.M | re.S)
REAL_RUN_SECONDS = 60  # an unlisted command runs for real: it must be quick
DRY_RUN_SECONDS = 180
SERVER_START_SECONDS = 60


@dataclass(frozen=True)
class Command:
    text: str  # as typed, continuations joined and the comment cut
    where: str  # page:line of its first appearance


def without_comment(line: str) -> str:
    """`line` up to a shell comment (a # that starts a word outside quotes), trailing blanks cut."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def block_commands(body: str, lang: str) -> list[tuple[int, str]]:
    """(line offset in the block, command) of one fenced block: `\\` continuations joined, comments
    cut; a console block's commands are its `$ ` lines (the rest is what they print)."""
    lines = body.splitlines()
    if lang == "console":
        lines = [line[2:] if line.startswith("$ ") else "" for line in lines]
    commands, start, parts = [], 0, []
    for offset, line in enumerate(lines):
        if not parts:
            start = offset
        if line.rstrip().endswith("\\"):
            parts.append(line.rstrip()[:-1].strip())
            continue
        text = without_comment(" ".join([*parts, line.strip()]))
        parts = []
        if text:
            commands.append((start, text))
    return commands


def documented_commands() -> list[Command]:
    """Every command of the pages' fenced shell blocks, once each, in page order."""
    found: dict[str, Command] = {}
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for block in FENCE.finditer(text):
            first_line = text.count("\n", 0, block.start("body")) + 1
            body = "\n".join(line[len(block["indent"]):] for line in block["body"].splitlines())
            for offset, command in block_commands(body, block["lang"]):
                found.setdefault(command, Command(command, f"{page.relative_to(REPO)}:{first_line + offset}"))
    return list(found.values())


class _UniqueKeys(yaml.SafeLoader):
    """A loader that refuses a key given twice: the second would silently replace the first."""

    def construct_mapping(self, node, deep=False):
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        twice = sorted({key for key in keys if keys.count(key) > 1})
        if twice:
            raise yaml.constructor.ConstructorError(None, None, f"listed twice: {twice}", node.start_mark)
        return super().construct_mapping(node, deep)


def listing() -> dict:
    return yaml.load(LISTED.read_text(encoding="utf-8"), Loader=_UniqueKeys)


COMMANDS = documented_commands()
HOW = listing()["commands"]


def test_the_docs_have_commands_and_the_list_names_only_documented_ones():
    """A stale entry (the page changed the command) would hide that the new one is not listed."""
    assert len(COMMANDS) > 10, "the fenced shell blocks were not found"
    typed = {c.text for c in COMMANDS}
    stale = [command for command in HOW if command not in typed]
    assert not stale, f"{LISTED.name} lists commands that no page documents (any more): {stale}"
    for command, how in HOW.items():
        assert isinstance(how, dict) and len(how) == 1 and set(how) <= {"dry", "skip", "serve"}, (command, how)


def test_commands_are_split_as_a_shell_would():
    block = "a 'x # y' \\\n   --b # c\n# only a comment\n\nd \"#e\"#f\n"
    assert block_commands(block, "bash") == [(0, "a 'x # y' --b"), (4, 'd "#e"#f')]
    assert block_commands("$ ls -l  # list\nREADME.md\n", "console") == [(0, "ls -l")]


def copy_of_the_repository(dest: Path) -> Path:
    """The repository's files as a fresh clone has them (tracked, or new and not ignored: the
    working tree's versions), links kept as links, and .venv a link to the venv running the tests."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(lambda name: name and name != ".venv", listed):  # a .venv link is not ignored by .venv/
        source = REPO / name
        if source.is_symlink() or source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name, follow_symlinks=False)
    (dest / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    return dest


def mark_one_window(review_dir: Path) -> None:
    """One window marked, as a reader leaves a review set that the next command builds on."""
    from soundclf.review.store import append_mark

    row = pd.read_csv(review_dir / "items.csv", dtype={"item": str}).iloc[0]
    append_mark(review_dir / "marks.csv", reviewer="reader", item=row["item"], file=row["file"], start=row["start"],
                end=row["end"], label=row["label"], mark="yes")


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """One fresh copy of the repository for every command, with the files the docs ask the reader
    to write and, where a command serves one, a small review set (a window marked) in place of the
    one the workflow would draw: the state a reader is in when typing each command."""
    root = copy_of_the_repository(tmp_path_factory.mktemp("checkout"))
    for name, text in listing()["files"].items():
        (root / name).write_text(text, encoding="utf-8")
    for folder in sorted({how["serve"] for how in HOW.values() if "serve" in how}):
        mark_one_window(write_review_set(root / folder))
    return root


def typed_environment() -> dict[str, str]:
    """A reader's shell with the venv activated (bare `snakemake` is found), where a page that
    opens a browser runs `true` instead."""
    return dict(os.environ, PATH=f"{Path(sys.prefix) / 'bin'}{os.pathsep}{os.environ['PATH']}", BROWSER="true")


def run_as_typed(command: str, root: Path, timeout: int) -> None:
    try:
        done = subprocess.run(["bash", "-c", command], cwd=root, env=typed_environment(), capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`{command}` ran past {timeout} s: list it in {LISTED.name} as dry (Snakemake) or skip, with why")
    assert done.returncode == 0, (f"`{command}` failed on a fresh copy (exit {done.returncode}):\n"
                                  f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}")


def dry(command: str) -> str:
    """The Snakemake command with -n appended (one command, no chain: -n must reach Snakemake)."""
    program = command.split()[0]
    assert Path(program).name == "snakemake" and not re.search(r"&&|\|\||[|;]", command), \
        f"`{command}` is listed as dry but is not one Snakemake command"
    return f"{command} -n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def on_port(command: str, port: int) -> str:
    """The command on `port`: its --port replaced, or --port added before the `--` that starts
    Snakemake's arguments (soundclf search), or at the end."""
    if re.search(r"--port[ =]\d+", command):
        return re.sub(r"--port[ =]\d+", f"--port {port}", command)
    head, sep, tail = command.partition(" -- ")
    return f"{head} --port {port}{sep}{tail}"


class Output:
    """What a background process prints, read as it comes (a server never ends its output)."""

    def __init__(self, stream):
        self.text = ""
        self.lock = threading.Lock()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream):
        for line in stream:
            with self.lock:
                self.text += line

    def url(self, process: subprocess.Popen, timeout: float) -> str | None:
        """The first http URL printed, or None when the process ended or `timeout` passed first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                found = re.search(r"https?://[^\s)'\"]+", self.text)
            if found:
                return found[0].rstrip(".,;")
            if process.poll() is not None:
                time.sleep(0.2)  # the reader thread catches up with its last lines
                return None
            time.sleep(0.1)
        return None


def fetch(url: str, token: str | None) -> tuple[int, bytes]:
    """(status, body) of a GET, the page's token sent as it sends it (header and query)."""
    request = urllib.request.Request(url, headers={"X-Review-Token": token} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def stop(process: subprocess.Popen) -> None:
    """Ctrl-C to the server this test started (its own process group), then SIGKILL if it lingers."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def clip_answer(command: str, root: Path, review_dir: Path) -> tuple[int, bytes, str]:
    """(status, body) of the first item's clip from the page the command starts, and the URL it
    printed; the command runs in the background on a free port and is stopped afterwards."""
    item = pd.read_csv(review_dir / "items.csv", dtype={"item": str})["item"].iloc[0]
    process = subprocess.Popen(["bash", "-c", f"exec {on_port(command, free_port())}"], cwd=root,
                               env=typed_environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    output = Output(process.stdout)
    try:
        url = output.url(process, SERVER_START_SECONDS)
        assert url, f"`{command}` printed no URL to open (exit {process.poll()}):\n{output.text[-3000:]}"
        parts = urllib.parse.urlsplit(url)
        token = urllib.parse.parse_qs(parts.query).get("token", [None])[0]
        query = urllib.parse.urlencode({"token": token}) if token else ""
        status, body = fetch(urllib.parse.urlunsplit((parts.scheme, parts.netloc, f"/clips/{item}.wav", query, "")),
                             token)
    finally:
        stop(process)
    return status, body, output.text


@pytest.mark.parametrize("command", COMMANDS, ids=[c.text for c in COMMANDS])
def test_documented_command_runs_as_typed(command, checkout):
    how = HOW.get(command.text, {})
    if "skip" in how:
        pytest.skip(f"{command.where}: {how['skip']}")
    if "dry" in how:
        run_as_typed(dry(command.text), checkout, DRY_RUN_SECONDS)
    elif "serve" in how:
        # typed with a relative folder, as the docs do: every clip answered 500 before c8f96d7
        status, body, printed = clip_answer(command.text, checkout, checkout / how["serve"])
        assert status == 200 and body, f"`{command.text}`: the clip answered {status}:\n{body[:500]!r}\n{printed}"
    else:
        run_as_typed(command.text, checkout, REAL_RUN_SECONDS)

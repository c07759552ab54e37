"""The `soundclf` command.

    soundclf review results/review/<name>/    # the review page over one review set
    soundclf search LABEL [-- SNAKEMAKE ARGS]  # the next step of a search loop, then its review
"""

from __future__ import annotations

import argparse
import getpass
import shlex
import subprocess
import sys
from pathlib import Path

DEFAULT_SNAKEMAKE_ARGS = ["--profile", "local"]


def _reviewer() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        return "reviewer"


def _page_options() -> argparse.ArgumentParser:
    """The review page's options, shared by `review` and `search`."""
    page = argparse.ArgumentParser(add_help=False)
    page.add_argument("--host", default="127.0.0.1",
                      help="address to listen on (default 127.0.0.1: this machine only); the page answers only "
                           "requests addressed to it, to localhost or to 127.0.0.1")
    page.add_argument("--port", type=int, default=8765, help="port to listen on (default 8765)")
    page.add_argument("--reviewer", default=_reviewer(),
                      help="the name the page offers when it asks who is marking (default: your login name)")
    page.add_argument("--no-browser", action="store_true", help="do not open the page in a browser")
    return page


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="soundclf", description="Sound classifier workflow tools.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    page = _page_options()
    review = commands.add_parser(
        "review", parents=[page], help="mark a review set's windows in the browser",
        description="Serve the review page over one review set folder (results/review/<name>/): listen to each "
                    "drawn window, mark it yes / no / unsure / other species; every mark is appended to the "
                    "folder's marks.csv, under the name the page asked its reviewer, before the page shows it as "
                    "saved. Open the address it prints: its token is what lets the page read and write.")
    review.add_argument("review_dir", metavar="DIR", type=Path, help="the review set folder, holding items.csv")
    search = commands.add_parser(
        "search", parents=[page], help="the next step of a label's search by example, then its review page",
        usage="soundclf search [options] LABEL [-- SNAKEMAKE ARGS]",
        description="One step of the agile-modelling loop (docs/search.md), read from results/search/LABEL/: "
                    "the search by example when there is no round yet; the review page on the latest round while "
                    "any of its windows is unmarked; otherwise the next round, then its review page. Run it in the "
                    "workflow's folder, again after each review. Arguments after '--' go to Snakemake and replace the "
                    f"default, {' '.join(DEFAULT_SNAKEMAKE_ARGS)}: e.g. -- --profile slurm --configfile my_config.yaml.")
    search.add_argument("label", metavar="LABEL", help="a label of search.queries")
    search.add_argument("--results", type=Path, default=Path("results"),
                        help="the config's results_dir, as written there (default: results)")
    search.add_argument("--next", action="store_true", dest="go_on",
                        help="run the next round although some windows of the latest are unmarked")
    search.add_argument("--detections", action="store_true",
                        help="the detections over the archive of the latest round that has marks, instead of a new round")
    search.add_argument("--no-review", action="store_true", help="run the step, do not serve the review page")
    return parser


def _serve(parser: argparse.ArgumentParser, args: argparse.Namespace, review_dir: Path) -> None:
    from .review.items import ReviewError
    from .review.server import reviewer_problem, serve
    from .review.store import MarksFileError

    if not 0 < args.port < 65536:
        parser.error(f"--port {args.port} is not a port number (1-65535)")
    if problem := reviewer_problem(args.reviewer):
        parser.error(f"--reviewer: {problem}")
    try:
        serve(review_dir, args.host, args.port, args.reviewer.strip(), open_browser=not args.no_browser)
    except (ReviewError, MarksFileError) as e:
        print(f"soundclf {args.command}: {e}", file=sys.stderr)
        sys.exit(1)


def _search(parser: argparse.ArgumentParser, args: argparse.Namespace, snakemake_args: list[str]) -> None:
    from .review.items import ReviewError
    from .review.store import MarksFileError
    from .search.loop import next_step

    try:
        step = next_step(args.results, args.label, args.go_on, args.detections)
    except (ValueError, ReviewError, MarksFileError) as e:
        print(f"soundclf search: {e}", file=sys.stderr)
        sys.exit(1)
    print(step.why, flush=True)
    if step.target is not None:
        # the target first: --configfile takes a list and would swallow it
        command = [sys.executable, "-m", "snakemake", step.target, *(snakemake_args or DEFAULT_SNAKEMAKE_ARGS)]
        print("$", shlex.join(command), flush=True)
        if (code := subprocess.call(command)) != 0:
            print(f"soundclf search: Snakemake failed (exit {code}); its messages above say why", file=sys.stderr)
            sys.exit(code if code > 0 else 1)  # killed by a signal: negative
    if step.review is None:
        print(f"made {step.target}", flush=True)
    elif args.no_review:
        print(f"next: soundclf review {step.review}, then soundclf search {args.label} again", flush=True)
    else:
        _serve(parser, args, step.review)


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    split = argv.index("--") if "--" in argv else len(argv)
    args, extra = parser.parse_args(argv[:split]), argv[split + 1:]
    if args.command == "review":
        if extra:
            parser.error("soundclf review takes no arguments after '--'")
        _serve(parser, args, args.review_dir)
    elif args.command == "search":
        _search(parser, args, extra)


if __name__ == "__main__":
    main()

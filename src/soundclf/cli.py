"""The `soundclf` command.

    soundclf review results/review/<name>/    # the review page over one review set
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path


def _reviewer() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        return "reviewer"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="soundclf", description="Sound classifier workflow tools.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    review = commands.add_parser(
        "review", help="mark a review set's windows in the browser",
        description="Serve the review page over one review set folder (results/review/<name>/): listen to each "
                    "drawn window, mark it yes / no / unsure / other species; every mark is appended to the "
                    "folder's marks.csv before the page shows it as saved.")
    review.add_argument("review_dir", metavar="DIR", type=Path, help="the review set folder, holding items.csv")
    review.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only)")
    review.add_argument("--port", type=int, default=8765, help="port to listen on (default 8765)")
    review.add_argument("--reviewer", default=_reviewer(),
                        help="your name in marks.csv (default: your login name)")
    review.add_argument("--no-browser", action="store_true", help="do not open the page in a browser")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "review":
        from .review.items import ReviewError
        from .review.server import serve
        from .review.store import MarksFileError

        if not 0 < args.port < 65536:
            parser.error(f"--port {args.port} is not a port number (1-65535)")
        if not args.reviewer.strip():
            parser.error("--reviewer must not be empty")
        try:
            serve(args.review_dir, args.host, args.port, args.reviewer.strip(), open_browser=not args.no_browser)
        except (ReviewError, MarksFileError) as e:
            print(f"soundclf review: {e}", file=sys.stderr)
            sys.exit(1)


if __name__ == "__main__":
    main()

"""`python -m lab.k8s [--check]`: write deploy/k8s/'s generated parts, or check them."""

from __future__ import annotations

import argparse
import sys

from lab.core import REPO
from lab.k8s.files import COMMAND, drift, write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 when a file drifted"
    )
    args = parser.parse_args(argv)
    if args.check:
        problems = drift()
        for problem in problems:
            print(f"{COMMAND}: {problem}", file=sys.stderr)
        if problems:
            print(f"{COMMAND}: run `{COMMAND}` and commit the result", file=sys.stderr)
        return 1 if problems else 0
    for path in write():
        print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m lab.runtimes.native supervise`: the native stack's supervisor process.

Internal: `make up` (NativeStack) starts it, and nothing else should. The user-facing
commands are `python -m lab VERB` (lab/cli.py).
"""

from __future__ import annotations

import sys

from lab.errors import reports_errors
from lab.runtimes.native.settings import NativeSettings
from lab.runtimes.native.supervisor import supervise

USAGE = "usage: python -m lab.runtimes.native supervise (internal: `make up` starts it)"


@reports_errors("lab")
def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args != ["supervise"]:
        print(USAGE, file=sys.stderr)
        raise SystemExit(2)
    supervise(NativeSettings())


if __name__ == "__main__":
    main()

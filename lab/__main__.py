"""`python -m lab VERB`: the lab's one command line (see lab/cli.py)."""

from lab.cli import main

if __name__ == "__main__":
    main()

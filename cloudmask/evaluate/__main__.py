"""`python -m cloudmask.evaluate ...` (same flags as `cloudmask evaluate`)."""

import argparse
import sys

from cloudmask.evaluate.cli import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="cloudmask evaluate", description="Score models and peers on labelled scenes.")
    add_arguments(p)
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded as the command in metrics and cards
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

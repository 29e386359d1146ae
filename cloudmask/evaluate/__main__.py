"""`python -m cloudmask.evaluate ...` (same flags as `cloudmask evaluate`)."""

import argparse
import sys

from cloudmask.evaluate import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="cloudmask evaluate", description="Score models and peers on labelled scenes.")
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

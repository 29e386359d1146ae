"""`python -m cloudmask.train ...` (same flags as `cloudmask train`)."""

import argparse
import sys

from cloudmask.train import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="cloudmask train", description="Train and export the cloudmask U-Nets.")
    add_arguments(p)
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

"""Subprocess entry for the DDP and SIGKILL tests: register the tiny test models, then run the CLI."""

import sys

import train_tiny  # noqa: F401  (registers the test models; Python puts this script's folder on the path)

from wavesurrogate.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

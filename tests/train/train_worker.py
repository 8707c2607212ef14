"""Subprocess entry for the DDP and SIGKILL tests: register the tiny test models, then run the CLI."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import train_tiny  # noqa: E402,F401  (registers the test models)

from wavesurrogate.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Fuzz the public loaders and the CLI with random configs, mutated HDF5 files and damaged run directories.

    .venv/bin/python -m benchmarks.fuzz [--configs 1000] [--hdf5 200] [--checkpoints 100] [--seed 0]
                                        [--out FILE.json]

Every case goes through the library loader (``load_campaign``/``load_train_config``,
``open_data`` + every accessor + ``load_all`` + ``describe``, ``load_run``/``load_state``) and through
the CLI in-process (``simulate``/``train`` against an existing output, ``info``, ``show``, ``evaluate``,
``train --resume``). A case is *accepted* (loaded fine), *rejected* (a ``UserError``; through the CLI:
exit code 2, one line on stderr, no traceback, nothing created or changed), a *crash* (any other
exception, or a CLI rejection that broke those rules) or a *hang* (no answer within ``--hang-s``). JSON on
stdout: counts per kind, per mutation strategy, and the first tracebacks. The inputs are derived from the
valid tiny files of tests/bad_inputs/make_corpus.py.

Modules: ``harness`` (tallies, the time bound, library and CLI calls), ``values`` (random values, tree and
text mutations, the hostile text strategies: deep nesting, alias bombs, duplicate and merge keys, huge
numbers), ``configs``, ``hdf5`` (byte and structure damage, links out of the file, virtual datasets,
external storage, special files, empty and huge extents), ``checkpoints`` (run files: damage, special
files, hostile JSON, wrong kwargs, tampered weights and resume states), ``__main__`` (the command).

Safety: the process's address space is limited (``--max-memory-gb``), so an input that makes the package
over-allocate shows up as a MemoryError instead of the OOM killer; a case that blocks or loops past
``--hang-s`` is counted as a hang and the run goes on (a loop in C that ignores the alarm ends the run
with a traceback at 3 × ``--hang-s``).
"""

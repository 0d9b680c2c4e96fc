"""Code the tests and the benchmark scripts share (not part of the installed package).

* :mod:`support.workflow`: the repository root, the venv's ``bin/``, a temp copy of the
  workflow to run real Snakemake in, the environment to run it with (standard library only);
* :mod:`support.cnn_synthetic`: synthetic descriptor datasets in the training format.

pytest puts the repository root on ``sys.path`` (``pythonpath`` in ``pyproject.toml``); the
benchmark scripts do it through ``benchmarks/_common.py``.
"""

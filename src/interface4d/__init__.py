"""interface4d: learn buried LAO/STO interface structure from simulated 4D-STEM data.

The library is split so that each job imports only what it needs: ``physics``, ``config``,
``grid`` and ``settings`` are pure Python (the Snakefile imports them), ``structures`` needs ASE,
``simulate`` needs abTEM, and nothing here imports TensorFlow.

Importing the package sets one default for the TensorFlow that training, evaluation and predict
import later: ``TF_ENABLE_ONEDNN_OPTS=1``. TensorFlow turns its oneDNN CPU kernels on by itself
only on CPUs with AVX-512 VNNI/BF16 or AMX; elsewhere (AMD EPYC, older Xeons) the network's Conv3D
trains 2.8x slower without them (``benchmarks/train_throughput.py --onednn both``, RESULTS.md).
A value the user set wins.
"""

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"


def versions(*modules: str) -> dict[str, str]:
    """Provenance: Python, interface4d and each named module's ``__version__``."""
    import importlib
    import platform

    out = {"python": platform.python_version(), "interface4d": __version__}
    for name in modules:
        out[name] = str(getattr(importlib.import_module(name), "__version__", "unknown"))
    return out

"""interface4d: learn buried LAO/STO interface structure from simulated 4D-STEM data.

The library is split so that each job imports only what it needs: ``config`` and ``grid`` are
pure Python (the Snakefile imports them), ``structures`` needs ASE, ``simulate`` needs abTEM, and
nothing here imports TensorFlow.
"""

__version__ = "0.1.0"


def versions(*modules: str) -> dict[str, str]:
    """Provenance: Python, interface4d and each named module's ``__version__``."""
    import importlib
    import platform

    out = {"python": platform.python_version(), "interface4d": __version__}
    for name in modules:
        out[name] = str(getattr(importlib.import_module(name), "__version__", "unknown"))
    return out

"""Numba's on-disk cache for abTEM's compiled kernels.

abTEM 1.0.11 compiles its Numba kernels in every process: two ``numba.vectorize`` kernels with
explicit signatures at import (``abtem.core.complex``) and the ``numba.jit`` potential kernels
(Lobato parametrisation, radial interpolation) at their first call. Its decorators do not ask for
``cache=True``, so each simulate job spent ~3-5 s of a ~15 s demo cell compiling the same
machine code again. :func:`import_abtem` imports abTEM with those decorators defaulting to
``cache=True`` (Numba's own cache: the same compiled code, reused, keyed by the source file and
the CPU), so only the first process on a machine compiles. Nothing about the physics changes:
the simulated patterns are bit-identical (``tests/test_simulate.py``).

The cache lives where Numba puts it (beside abTEM's sources in ``__pycache__``, or under
``NUMBA_CACHE_DIR``).
"""

from __future__ import annotations

import functools
import sys
from types import ModuleType


def _default_cache(decorator):
    @functools.wraps(decorator)
    def wrapped(*args, **kwargs):
        kwargs.setdefault("cache", True)
        return decorator(*args, **kwargs)

    return wrapped


def import_abtem() -> ModuleType:
    """``import abtem`` with Numba's cache on for the kernels abTEM defines."""
    if "abtem" in sys.modules:
        return sys.modules["abtem"]
    import numba

    saved = {name: getattr(numba, name) for name in ("jit", "njit", "vectorize")}
    try:
        for name, decorator in saved.items():
            setattr(numba, name, _default_cache(decorator))
        import abtem
    finally:
        for name, decorator in saved.items():
            setattr(numba, name, decorator)
    return abtem

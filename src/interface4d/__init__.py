"""interface4d: learn buried LAO/STO interface structure from simulated 4D-STEM data.

The library is split so that each job imports only what it needs: ``config`` and ``grid`` are
pure Python (the Snakefile imports them), ``structures`` needs ASE, ``simulate`` needs abTEM, and
nothing here imports TensorFlow.
"""

__version__ = "0.1.0"

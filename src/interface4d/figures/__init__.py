"""Figures: every plot the workflow draws, one module per part of the campaign.

* :mod:`interface4d.figures.campaign` -- the structures (Oxley et al. 2020, Fig. 2a-c) and one
  cell's scan (Fig. 2d-e): :func:`~interface4d.figures.campaign.plot_structures`,
  :func:`~interface4d.figures.campaign.plot_scan_montage`.
* :mod:`interface4d.figures.evaluation` -- the evaluation figures (Figs. 3-5, the dose study,
  detectability and the headline), drawn from the tables :mod:`interface4d.evaluate` computes.

Object-oriented matplotlib only (``Figure``, never ``pyplot``, no global backend change).
Importing this package imports nothing: matplotlib loads with the module that draws.
"""

"""``kairos reproduce``: the paper's evaluation (tables, figures, docs) in one command.

* :mod:`~kairos.reproduce.experiments` -- the settings, the cells of every experiment and
  the runner (resumable, optionally parallel).
* :mod:`~kairos.reproduce.cache` -- finished cells, a JSON-lines file under ``OUT/cache``.
* :mod:`~kairos.reproduce.noise` -- latency estimates perturbed per (type, size).
* :mod:`~kairos.reproduce.report` -- markdown and CSV tables, ``results.md``.
* :mod:`~kairos.reproduce.figures` -- PNG figures (matplotlib, optional).
"""

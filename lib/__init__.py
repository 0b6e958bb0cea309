"""Shared code of the implicit-bias companion book.

The ground floor holds the papers' mathematical objects, one module each, plus the input checks they
share; none of it imports the book machinery:

- ``checks``       -- profiles, devices, :class:`~lib.checks.ParameterError` and ``check_*``
- ``engine``       -- the batched execution layer: grids of runs, divergence masks, tidy tables
- ``flows``, ``optim`` -- gradient-flow integrators (RK4), gradient descent, batched optimisers
- ``neuron``, ``homogeneous``, ``margins``, ``shallow`` -- models and their measurements
- ``minnorm1d``, ``known_regions``, ``kinks`` -- exact minimum-norm solvers in one dimension
- ``matrix_completion``, ``polar`` -- deep factorisations, the ratio penalty and its polar factor

Above it, ``studies`` (one module per chapter: its parameters and studies as plain functions) and
``plots`` (one function per figure); the machinery that runs, records and renders chapters is the
``book`` subpackage (``python -m lib ...``).
"""

__version__ = "0.1.0"

"""Shared code of the implicit-bias companion book.

Chapters (``book/*.md``) hold narrative, parameters and plots; everything they compute comes from
here. Modules are named after the mathematical objects of the papers:

- ``chapter``      -- start a chapter run: validated parameters, device, seeds, claims, figures
- ``claims``       -- checked claims with tolerances, written to ``_build/claims/<chapter>.json``
- ``figures``      -- figures saved as PNG/PDF with a provenance record; ``style`` for the look
- ``engine``       -- the batched execution layer: grids of runs, divergence masks, tidy tables
- ``cache``        -- content-addressed cache of study results
- ``flows``        -- gradient-flow integrators (RK4) and gradient descent, batched over runs
- ``runner``       -- execute chapters with papermill and build the book (``python -m lib``)
- ``studies``      -- one module per chapter: the chapter's studies as plain functions
"""

__version__ = "0.1.0"

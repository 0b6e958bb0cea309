"""The machinery that runs, records and renders the book's chapters (the mathematics lives one floor
down, in ``lib``, and never imports from here).

- ``chapters``  -- which chapters exist (``_toc.yml``) and their aliases (``ch01``)
- ``chapter``   -- start a chapter run: device, seeds, the claim registry, figures, the study cache
- ``claims``    -- checked claims with tolerances, kinds and negative controls
- ``figures``   -- figures saved as PNG/PDF with a provenance record
- ``cache``     -- content-addressed cache of study results, keyed by the code a study reaches
- ``provenance``, ``paths`` -- commits, code versions, library versions; build folders, atomic writes
- ``execute``   -- execute chapters with papermill (in parallel processes), archive run records
- ``site``      -- stage the executed notebooks and render the book with jupyter-book
- ``sweep``     -- sharded sweeps, in-process or on Dask
- ``launch``, ``sphinxext`` -- Binder/Colab twins and links; the book's Sphinx extension
- ``papers``    -- the five papers and their chapters
- ``cli``       -- ``python -m lib ...``
"""

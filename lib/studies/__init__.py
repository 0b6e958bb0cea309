"""One module per chapter: its profiles and its studies, as plain functions (no Jupyter needed)."""

"""One module per chapter: one function per figure (results in, matplotlib Figure out)."""

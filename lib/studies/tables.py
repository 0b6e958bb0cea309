"""Tables shared by the chapters' study modules.

Each ``chNN.params(profile)`` returns one frozen dataclass with a field per study (named after the
study function) holding that study's frozen parameter dataclass; :func:`describe` shows it as a table.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd


def _value(v: Any) -> str:
    if isinstance(v, tuple) and len(v) > 4 and all(isinstance(x, (int, float)) for x in v):
        return f"{len(v)} values in [{min(v):g}, {max(v):g}]"
    if isinstance(v, tuple):
        return ", ".join(f"{x:g}" if isinstance(x, (int, float)) else str(x) for x in v) or "(none)"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def describe(P: Any) -> pd.DataFrame:
    """A chapter's parameters ``P`` as a short table (study, parameter, value); a tuple of more than
    four numbers is summarised as ``n values in [a, b]``."""
    if not dataclasses.is_dataclass(P) or isinstance(P, type):
        raise TypeError(f"describe: expected a chapter's parameter dataclass, got {type(P).__name__}")
    rows = [{"study": s.name, "parameter": f.name, "value": _value(getattr(getattr(P, s.name), f.name))}
            for s in dataclasses.fields(P) for f in dataclasses.fields(getattr(P, s.name))]
    return pd.DataFrame(rows).set_index(["study", "parameter"])

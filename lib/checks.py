"""The ground floor: input checks shared by the mathematics, the studies and the book machinery.

Every invalid input raises :class:`ParameterError` naming the parameter, its value and what is allowed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

PROFILES = ("fast", "full")
DEVICES = ("auto", "cpu", "cuda")


class ParameterError(ValueError):
    """An invalid chapter parameter (profile, device, seed, or a study setting)."""


def check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ParameterError(
            f"invalid {name}={value!r}: allowed values are {', '.join(repr(a) for a in allowed)}"
        )
    return value


def check_positive(name: str, value: Any, *, integer: bool = False, allow_zero: bool = False) -> Any:
    """Raise :class:`ParameterError` unless ``value`` is a finite positive number (or int)."""
    ok_type = isinstance(value, (int, np.integer)) if integer else isinstance(value, (int, float, np.number))
    if isinstance(value, bool) or not ok_type or not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        kind = "integer" if integer else "number"
        bound = ">= 0" if allow_zero else "> 0"
        raise ParameterError(f"invalid {name}={value!r}: must be a finite {kind} {bound}")
    return value


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when available; ``cuda`` without a GPU is an error, not a silent fallback."""
    check_choice("device", device, DEVICES)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ParameterError(
            "invalid device='cuda': no CUDA GPU is visible to PyTorch here; use device='auto' or 'cpu'"
            " (or copy the _build/cache of a GPU run here to render its results)"
        )
    return torch.device(device)


def check_profile(profile: Any) -> str:
    """A chapter profile: ``"fast"`` (CI scale) or ``"full"`` (paper scale)."""
    return check_choice("profile", profile, PROFILES)


def check_fields(obj: Any, *names: str, integer: bool = False, allow_zero: bool = False) -> None:
    """:func:`check_positive` on the attributes ``names`` of ``obj`` (a parameter dataclass)."""
    for n in names:
        check_positive(n, getattr(obj, n), integer=integer, allow_zero=allow_zero)


def check_numbers(name: str, values: Any, *, lo: float = 0.0, hi: float = float("inf"), integer: bool = False,
                  allow_empty: bool = False, closed: tuple[bool, bool] = (False, False), what: str = "") -> tuple:
    """A sequence (tuple, list) of finite numbers between ``lo`` and ``hi``, ends open unless ``closed``
    says otherwise (``(lo_closed, hi_closed)``), integers if ``integer``, non-empty unless
    ``allow_empty``; returns it as a tuple, raises :class:`ParameterError` naming ``name`` otherwise."""
    ok = isinstance(values, Sequence) and not isinstance(values, str) and (allow_empty or len(values) > 0)
    kind = (int, np.integer) if integer else (int, float, np.number)
    for v in values if ok else ():
        if isinstance(v, bool) or not isinstance(v, kind) or not np.isfinite(v):
            ok = False
        elif (v < lo if closed[0] else v <= lo) or (v > hi if closed[1] else v >= hi):
            ok = False
    if not ok:
        many = "a sequence" if allow_empty else "a non-empty sequence"
        kinds = "integers" if integer else "numbers"
        interval = f"{'[' if closed[0] else '('}{lo:g}, {hi:g}{']' if closed[1] else ')'}"
        raise ParameterError(f"invalid {name}={values!r}: {what or f'{many} of {kinds} in {interval}'}")
    return tuple(values)

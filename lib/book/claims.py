"""Checked claims.

A chapter states what it reproduces as *claims*: a measured number compared with an expected value
(within a tolerance) or with bounds. Each claim is registered with the paper it concerns and where in
that paper (or in the book's own derivation) it comes from; the registry is written to
``_build/claims/<chapter stem>.json`` after every claim, and a failed claim raises
:class:`ClaimFailed` so that the chapter, and the build, fail with it.

Tolerances are part of the claim and appear in the claims table; never loosen one to make a run pass.

Every claim has a *kind*. An ``evidence`` claim is a measurement that could come out against the paper
or the book's derivation; it carries a *control*: the same measurement, under the same criterion, of a
named plausible wrong ingredient (Euler instead of RK4, the bias left out of the norm, GD instead of
Adam, ...), which must *fail* the criterion. A control that passes fails the claim: the measurement
cannot tell the wrong ingredient apart. An ``identity`` claim is an algebraic or structural check (true
by construction once the code is right): kept and shown, but listed apart and never counted as evidence.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import paths


class ClaimFailed(AssertionError):
    """A chapter's claim did not hold."""


#: Printed values below this magnitude are shown as a bound (``< 1e-08``): their digits are rounding
#: or solver noise that changes with the BLAS, the thread count, the order of a sum or a solver's
#: path (measured: exact-solver position errors of 1e-11 in one run and 1e-10 in the next, residuals
#: of 1e-13 vs 1e-15 between one- and two-thread runs), and nbval compares what is printed. The LP
#: solvers' own tolerances are 1e-9, so nothing below 1e-8 is a reproducible digit.
NOISE_FLOOR = 1e-8
#: Significant digits of a printed value (the JSON records keep every digit).
DIGITS = 4


def fmt_value(x: Any, floor: float = NOISE_FLOOR) -> str:
    """A measured number as a chapter prints it: ``DIGITS`` significant digits, ``0`` for zero, and a
    bound (``< 1e-08``) below ``floor``, so that reruns on other machines print the same."""
    try:
        v = float(x.item() if hasattr(x, "item") else x)
    except (TypeError, ValueError):
        return str(x)
    if not math.isfinite(v):
        return str(v)
    if v == 0:
        return "0"
    if abs(v) < floor:
        return f"< {floor:.0e}" if v > 0 else f"> -{floor:.0e}"
    if 10**DIGITS <= abs(v) < 1e12:  # large values keep their integer digits
        return f"{v:.0f}"
    return f"{v:.{DIGITS}g}"


def _num(x: Any) -> float:
    if hasattr(x, "item"):
        x = x.item()
    x = float(x)
    return x


KINDS = ("evidence", "identity")
#: Whose statement a claim checks: a part of the paper (its abstract, a row of its table, its main
#: result), the book's own derivation, construction or experiment, or the book's numerics (a solver,
#: an integrator, a cross-check or an error estimate). Appendix A files and filters claims by it.
SOURCES = {"paper": "paper", "book": "book's derivation", "numerics": "numerics"}


@dataclass
class Control:
    """A negative control: ``measured`` is what the claim's measurement gives with the wrong
    ingredient named by ``description``; ``passed`` is the claim's criterion applied to it."""

    description: str
    measured: float
    passed: bool = False


@dataclass
class Claim:
    id: str
    statement: str
    paper: str  # bibliography key of the paper, e.g. "vardi2021implicit"
    where: str  # where in the paper, or "book's derivation of ..."
    measured: float
    source: str = "paper"  # a key of SOURCES
    expected: float | None = None
    tol: float | None = None
    rel: bool = False
    lower: float | None = None
    upper: float | None = None
    strict: bool = False
    values: dict[str, float] = field(default_factory=dict)
    kind: str = "evidence"
    control: Control | None = None
    passed: bool = False

    def criterion(self) -> str:
        """The test, in words: ``|m - 5| <= 1e-08`` or ``1 <= m <= 2``."""
        if self.expected is not None:
            t = f"{self.tol:.3g}" + (f" * |{self.expected:.6g}|" if self.rel else "")
            return f"|m - {self.expected:.6g}| <= {t}"
        lt = "<" if self.strict else "<="
        parts = []
        if self.lower is not None:
            parts.append(f"{self.lower:.6g} {lt}")
        parts.append("m")
        if self.upper is not None:
            parts.append(f"{lt} {self.upper:.6g}")
        return " ".join(parts)

    def evaluate(self, m: float | None = None) -> bool:
        """The criterion applied to the measured value (or to ``m``, e.g. a control's value)."""
        m = self.measured if m is None else m
        if not math.isfinite(m):
            return False
        if self.expected is not None:
            bound = self.tol * (abs(self.expected) if self.rel else 1.0)
            return abs(m - self.expected) <= bound
        ok = True
        if self.lower is not None:
            ok &= m > self.lower if self.strict else m >= self.lower
        if self.upper is not None:
            ok &= m < self.upper if self.strict else m <= self.upper
        return bool(ok)

    def resolution(self) -> float:
        """The smallest magnitude worth printing for this claim: a hundredth of the scale of its
        criterion (the tolerance, or the nonzero bound), and never below :data:`NOISE_FLOOR`. A value
        far below its tolerance prints as a bound; its digits carry no information about the claim."""
        if self.expected is not None:
            scale = self.tol * (abs(self.expected) if self.rel else 1.0)
        else:
            scale = min((abs(b) for b in (self.lower, self.upper) if b is not None and b != 0), default=0.0)
        if not (0 < scale < math.inf):
            return NOISE_FLOOR
        return max(NOISE_FLOOR, 10.0 ** math.floor(math.log10(scale / 100)))

    def cannot_tell(self) -> bool:
        """Whether the control passed the criterion: the claim cannot tell the wrong ingredient apart."""
        return self.control is not None and self.control.passed

    def summary(self) -> str:
        mark = "PASS" if self.passed else "FAIL"
        r = self.resolution()
        line = f"[{mark}] {self.id}: {self.statement} (m = {fmt_value(self.measured, r)}; {self.criterion()})"
        if self.kind == "identity":
            line += " [identity]"
        if self.control is not None:
            line += f"\n       control, {self.control.description}: m = {fmt_value(self.control.measured, r)} " + (
                "PASSES too: the claim cannot tell it apart" if self.control.passed else "fails, as it must")
        return line


class ClaimRegistry:
    """The claims of one chapter run; rewritten (atomically) to its JSON file after each claim."""

    def __init__(self, stem: str, meta: dict[str, Any], path: Path | None = None, *, write: bool = True):
        self.stem = stem
        self.meta = meta
        self.path = path or paths.claims_dir() / f"{stem}.json"
        self.write = write
        self.claims: list[Claim] = []
        self._write()

    def check(
        self,
        id: str,
        statement: str,
        *,
        paper: str,
        where: str,
        source: str,
        measured: Any,
        expected: Any = None,
        tol: float | None = None,
        rel: bool = False,
        lower: Any = None,
        upper: Any = None,
        strict: bool = False,
        values: dict[str, Any] | None = None,
        kind: str = "evidence",
        control: tuple[str, Any] | None = None,
        quiet: bool = False,
    ) -> Claim:
        """Register and check one claim; raise :class:`ClaimFailed` if it does not hold.

        Either ``expected`` with ``tol`` (absolute, or relative to ``|expected|`` when ``rel``), or
        ``lower`` and/or ``upper`` bounds (inclusive unless ``strict``). ``values`` are further measured
        numbers reported with the claim (e.g. the limit for each gamma). ``source`` says whose statement
        it checks (a key of :data:`SOURCES`: ``"paper"``, ``"book"`` or ``"numerics"``). ``kind`` is ``"evidence"`` or
        ``"identity"``; ``control`` is ``(description of the wrong ingredient, its measured value)``,
        which must fail the same criterion (otherwise the claim fails: it cannot tell them apart).
        """
        if any(c.id == id for c in self.claims):
            raise ValueError(f"claim id {id!r} is registered twice in {self.stem}")
        if expected is None and lower is None and upper is None:
            raise ValueError(f"claim {id!r}: give expected (with tol) or lower/upper bounds")
        if expected is not None and tol is None:
            raise ValueError(f"claim {id!r}: an expected value needs a tolerance tol")
        if source not in SOURCES:
            raise ValueError(f"claim {id!r}: invalid source={source!r}: allowed values are {tuple(SOURCES)} "
                             "(a part of the paper, the book's derivation, the book's numerics)")
        if kind not in KINDS:
            raise ValueError(f"claim {id!r}: invalid kind={kind!r}: allowed values are {KINDS}")
        if kind == "evidence" and control is None:
            raise ValueError(f"claim {id!r}: an evidence claim needs a control=(wrong ingredient, its measured "
                             "value) that fails the same criterion; an algebraic check is kind='identity'")
        if control is not None and (len(control) != 2 or not isinstance(control[0], str) or not control[0]):
            raise ValueError(f"claim {id!r}: control must be (description of the wrong ingredient, measured value)")
        claim = Claim(
            id=id,
            statement=statement,
            paper=paper,
            where=where,
            measured=_num(measured),
            source=source,
            expected=None if expected is None else _num(expected),
            tol=None if tol is None else float(tol),
            rel=rel,
            lower=None if lower is None else _num(lower),
            upper=None if upper is None else _num(upper),
            strict=strict,
            values={str(k): _num(v) for k, v in (values or {}).items()},
            kind=kind,
        )
        if control is not None:
            claim.control = Control(control[0], _num(control[1]))
            claim.control.passed = claim.evaluate(claim.control.measured)
        claim.passed = claim.evaluate() and not claim.cannot_tell()
        self.claims.append(claim)
        self._write()
        if not quiet:
            print(claim.summary())
        if claim.cannot_tell():
            raise ClaimFailed(f"claim {id} cannot tell {claim.control.description} apart "
                              f"(control m = {fmt_value(claim.control.measured)}; {claim.criterion()})")
        if not claim.passed:
            raise ClaimFailed(claim.summary())
        return claim

    def to_json(self) -> dict[str, Any]:
        def clean(c: Claim) -> dict[str, Any]:
            d = asdict(c)
            d["criterion"] = c.criterion()
            # JSON has no inf/nan; keep the number readable instead of failing the write.
            for k in ("measured", "expected", "tol", "lower", "upper"):
                v = d[k]
                if isinstance(v, float) and not math.isfinite(v):
                    d[k] = str(v)
            if d["control"] and not math.isfinite(d["control"]["measured"]):
                d["control"]["measured"] = str(d["control"]["measured"])
            return d

        evidence = [c for c in self.claims if c.kind == "evidence"]
        return {
            "chapter": self.stem,
            **self.meta,
            "n_claims": len(self.claims),
            "n_passed": sum(c.passed for c in self.claims),
            "n_evidence": len(evidence),
            "n_controlled": sum(c.control is not None and not c.control.passed for c in evidence),
            "n_identity": len(self.claims) - len(evidence),
            "claims": [clean(c) for c in self.claims],
        }

    def _write(self) -> None:
        if self.write:
            paths.atomic_write_json(self.path, self.to_json())


def load_all(directory: Path) -> list[dict[str, Any]]:
    """Read every ``*.claims.json`` (or ``*.json``) claims file in ``directory``, sorted by chapter."""
    import json

    out = []
    for f in sorted(Path(directory).glob("*.json")):
        try:
            data = json.loads(f.read_text())
        except (OSError, ValueError) as exc:
            import sys

            print(f"warning: unreadable claims file {f} ({exc}); skipped", file=sys.stderr)
            continue
        if isinstance(data, dict) and "claims" in data:
            out.append(data)
    return out

"""Chapter 2: margin maximization in linear and ReLU networks (``vardi2022margin``).

Each study is a plain function of keyword parameters plus ``device`` and ``seed`` that batches all its
runs (initialisations, widths, perturbations, search starts) along a leading axis and returns plain
data. Its parameters are a frozen dataclass of the same name in CamelCase (:class:`FcLinear` for
:func:`fc_linear`), validated on construction; :func:`params` gives the one :class:`Params` of a profile
(``full`` written out, ``fast`` derived from it), :func:`describe` shows it as a short table, and
:func:`run_all` runs every study through a chapter context's cache. The chapter's claims measure the
results with the small functions of the section "measurements" (each with a unit test).

- :func:`fc_linear` -- fully connected linear nets of depth 2 and 3 on random separable data vs the
  L2-SVM (global optimum row of the table);
- :func:`diagonal` -- diagonal nets of depth 2 and 3: special vs generic initialisations, improving
  curves, dual vectors, per-layer QPs, local search at the trained limits;
- :func:`relu_width2` -- the depth-2 ReLU dead-neuron KKT point, its certificate and improving curve,
  the hand-built split-neuron point and the per-layer statements;
- :func:`open_sets` -- depth-2 ReLU nets from initialisations drawn from explicit open sets (split,
  dead neuron, one neuron per point): their limits, KKT residuals and local-search verdicts;
- :func:`random_relu` -- Gaussian initialisations of ReLU nets of several widths;
- :func:`escape` -- time to leave the special initialisations' bad points when perturbed by e, in
  trainer steps and in gradient-flow time;
- :func:`smoothed` -- the smoothed and the hard normalized margin along an accurate (RK4) flow.

The shared training settings are the module constants :data:`ETA`, :data:`ETA_MIN`, :data:`TEMP` (and
:data:`TEMP_SOFT` for the two-point ReLU data of the random and open-set studies), stated once here and
used as the defaults of every study's parameters.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from .. import homogeneous as H
from .. import margins as M
from ..book import sweep
from ..checks import ParameterError, check_fields, check_numbers, check_positive, check_profile
from ..engine import Workload, check_finite, grid, tidy

#: the ReLU example's data ``x_{1,2} = (+-1, DELTA)``
DELTA = 0.2
#: the trainer (:func:`lib.margins.train`): constant step ETA for half the steps, then geometric decay to
#: ETA_MIN; the norm cap ``||theta||^L <= TEMP / eta_k``
ETA = 0.05
ETA_MIN = 1e-5
TEMP = 1000.0
#: the norm cap of the random and open-set ReLU studies. On the two-point data both constraints are
#: active at every limit; with TEMP the softmax is far sharper than a step resolves and the trainer
#: serves the two points alternately (a 2-cycle), which leaves a split limit unbalanced
#: (``v_j / ||w_j|| ~ 0.98``, KKT residual ~ 2e-2); with a cap of order 1 there is no 2-cycle
TEMP_SOFT = 1.0
#: the perturbation of the depth-2 special initialisation whose limit is the control of its claim
PERTURB = 1e-6
#: classes of a depth-2 ReLU limit on the two-point data (:func:`classify_relu`)
CLASSES = ("not separated", "global optimum", "bad, zero neuron", "bad, split", "bad, other", "other")
#: relative tolerance of the classification of a limit by its normalized margin
CLASS_TOL = 1e-3
#: a neuron is a zero neuron when its share of ||theta|| is below this
ZERO_SHARE = 1e-3
#: the open-set study searches around split limits whose smaller neuron holds at least this share of
#: ||theta||: every pre-activation then stays positive within radius DELTA * SPLIT_SHARE / (sqrt(2) ||x_i||)
#: (1.39e-2), the neighbourhood where the chapter's proposition applies; its radii stay below that
SPLIT_SHARE = 0.1
#: names of the points of the local searches (:func:`local_checks`)
NONLOCAL_POINTS = ("diagonal depth 2, special-init limit", "diagonal depth 3, symmetric limit", "ReLU dead-neuron limit",
                   "zero-neuron limits (dead set)")
EXPONENT_POINTS = NONLOCAL_POINTS[:3]
NOT_KKT = "diagonal depth 2, special run before convergence (not KKT)"
SPLIT = "split limits"
SPLIT_CONTROL = "split limits, control cap (not KKT)"
LAYER1 = ", layer 1 only"
ZERO = NONLOCAL_POINTS[3]


# -------------------------------------------------------------------------------------------------
# parameters: one frozen dataclass per study, validated on construction
# -------------------------------------------------------------------------------------------------
def _training(obj: Any) -> None:
    check_fields(obj, "eta", "eta_min", "temp")
    if obj.eta_min > obj.eta:
        raise ParameterError(f"invalid eta_min={obj.eta_min!r}: must be <= eta={obj.eta!r}")


@dataclass(frozen=True)
class Search:
    """The ball-constrained local search (:func:`lib.margins.local_search`): radii, starts per radius,
    ascent iterations."""

    radii: tuple[float, ...]
    starts: int
    iters: int

    def __post_init__(self) -> None:
        check_numbers("radii", self.radii)
        check_fields(self, "starts", "iters", integer=True)


@dataclass(frozen=True)
class FcLinear:
    """Fully connected linear nets (:func:`fc_linear`)."""

    n: int
    d: int
    width: int
    depths: tuple[int, ...]
    inits: int
    steps: int
    early: int = 20
    eta: float = ETA
    eta_min: float = ETA_MIN
    temp: float = TEMP

    def __post_init__(self) -> None:
        check_fields(self, "n", "d", "width", "inits", "steps", "early", integer=True)
        check_numbers("depths", self.depths, lo=1, integer=True, what="a non-empty tuple of integers >= 2")
        if self.early >= self.steps // 2:
            raise ParameterError(f"invalid early={self.early!r}: must be < steps / 2 = {self.steps // 2}")
        _training(self)


@dataclass(frozen=True)
class Diagonal:
    """Diagonal linear nets (:func:`diagonal`); ``early``: the step of the snapshot used as the
    not-yet-converged control."""

    inits: int
    steps: int
    search: Search
    early: int = 20
    eta: float = ETA
    eta_min: float = ETA_MIN
    temp: float = TEMP

    def __post_init__(self) -> None:
        check_fields(self, "inits", "steps", "early", integer=True)
        if self.early >= self.steps:
            raise ParameterError(f"invalid early={self.early!r}: must be < steps={self.steps!r}")
        _training(self)


@dataclass(frozen=True)
class ReluWidth2:
    """The depth-2 ReLU constructions (:func:`relu_width2`)."""

    steps: int
    search: Search
    early: int = 20
    delta: float = DELTA
    eta: float = ETA
    eta_min: float = ETA_MIN
    temp: float = TEMP

    def __post_init__(self) -> None:
        check_fields(self, "steps", "early", integer=True)
        check_fields(self, "delta")
        if self.early >= self.steps:
            raise ParameterError(f"invalid early={self.early!r}: must be < steps={self.steps!r}")
        _training(self)


@dataclass(frozen=True)
class OpenSets:
    """Initialisations drawn from open sets (:func:`open_sets`): ``n`` per set; the local search runs
    at the first ``local_points`` limits of each kind; ``temp_control``: the cap of the control run."""

    n: int
    steps: int
    search: Search
    local_points: int
    delta: float = DELTA
    eta: float = ETA
    eta_min: float = ETA_MIN
    temp: float = TEMP_SOFT
    temp_control: float = TEMP

    def __post_init__(self) -> None:
        check_fields(self, "n", "steps", "local_points", integer=True)
        check_fields(self, "delta", "temp_control")
        _training(self)


@dataclass(frozen=True)
class RandomRelu:
    """Gaussian initialisations of depth-2 ReLU nets (:func:`random_relu`); the first ``compare`` inits
    of each width are also trained without the norm cap."""

    widths: tuple[int, ...]
    inits: int
    steps: int
    compare: int = 0
    init_scale: float = 1.0
    delta: float = DELTA
    eta: float = ETA
    eta_min: float = ETA_MIN
    temp: float = TEMP_SOFT

    def __post_init__(self) -> None:
        check_numbers("widths", self.widths, integer=True, what="a non-empty tuple of integers >= 1")
        check_fields(self, "inits", "steps", integer=True)
        check_positive("compare", self.compare, integer=True, allow_zero=True)
        check_fields(self, "init_scale", "delta")
        _training(self)


@dataclass(frozen=True)
class Escape:
    """Escape from the special initialisations' bad points (:func:`escape`)."""

    eps: tuple[float, ...]
    max_steps: int
    eta: float = ETA

    def __post_init__(self) -> None:
        check_numbers("eps", self.eps, hi=0.5, what="a non-empty tuple of perturbations in (0, 0.5)")
        check_fields(self, "max_steps", integer=True)
        check_fields(self, "eta")


@dataclass(frozen=True)
class Smoothed:
    """The smoothed margin along an accurate flow (:func:`smoothed`), on the data of :func:`fc_linear`
    (``n``, ``d``, ``width`` derived from it): RK4 steps ``h`` and ``h/2`` in the clock of
    :func:`lib.margins.flow_field`, each run until ``||theta||^L`` reaches ``scale_max``."""

    n: int
    d: int
    width: int
    inits: int
    h: float
    scale_max: float
    max_steps: int
    q0: float = 3.0

    def __post_init__(self) -> None:
        check_fields(self, "n", "d", "width", "inits", "max_steps", integer=True)
        check_fields(self, "h", "scale_max", "q0")


@dataclass(frozen=True)
class Params:
    """The parameters of every study of the chapter; a field per study, named after its function."""

    fc_linear: FcLinear
    diagonal: Diagonal
    relu_width2: ReluWidth2
    open_sets: OpenSets
    random_relu: RandomRelu
    escape: Escape
    smoothed: Smoothed


def _geom(lo: float, hi: float, num: int) -> tuple[float, ...]:
    return tuple(float(x) for x in np.geomspace(lo, hi, num))


_SEARCH_FULL = Search(radii=_geom(3e-3, 1e-1, 11), starts=512, iters=1500)
_FC_FULL = FcLinear(n=12, d=4, width=6, depths=(2, 3, 4), inits=256, steps=20000)
FULL = Params(
    fc_linear=_FC_FULL,
    diagonal=Diagonal(inits=256, steps=10000, search=_SEARCH_FULL),
    relu_width2=ReluWidth2(steps=10000, search=_SEARCH_FULL),
    open_sets=OpenSets(n=1024, steps=6000, local_points=64,
                       search=Search(radii=_geom(2e-3, 1e-2, 6), starts=64, iters=1000)),
    random_relu=RandomRelu(widths=(2, 4, 8, 16, 32), inits=2048, steps=6000, compare=2048),
    escape=Escape(eps=_geom(1e-2, 1e-13, 23), max_steps=4000),
    smoothed=Smoothed(n=_FC_FULL.n, d=_FC_FULL.d, width=_FC_FULL.width, inits=64, h=0.1, scale_max=1000.0,
                      max_steps=40000),
)

_r = dataclasses.replace
#: the searches of the fast profile: many starts at few centres (the fitted exponents need the best gain
#: at small radii, which the search under-estimates with few starts); few starts at the open sets'
#: many centres (their verdicts use the largest gain / r^2)
_SEARCH_FAST = _r(_SEARCH_FULL, radii=_geom(3e-3, 1e-1, 6), starts=256, iters=400)
FAST = _r(
    FULL,
    fc_linear=_r(FULL.fc_linear, depths=(2, 3), inits=16, steps=6000),
    diagonal=_r(FULL.diagonal, inits=8, steps=2000, search=_SEARCH_FAST),
    relu_width2=_r(FULL.relu_width2, steps=2000, search=_SEARCH_FAST),
    open_sets=_r(FULL.open_sets, n=128, steps=3000, local_points=8,
                 search=_r(FULL.open_sets.search, radii=_geom(2e-3, 1e-2, 4), starts=32, iters=400)),
    random_relu=_r(FULL.random_relu, widths=(2, 4), inits=1024, steps=3000, compare=256),
    escape=_r(FULL.escape, eps=_geom(1e-2, 1e-10, 9), max_steps=1500),
    smoothed=_r(FULL.smoothed, inits=8, h=0.2, scale_max=60.0, max_steps=4000),
)


def params(profile: str) -> Params:
    """The parameters of every study for ``profile`` (``"fast"`` or ``"full"``)."""
    return {"fast": FAST, "full": FULL}[check_profile(profile)]


def describe(P: Params) -> pd.DataFrame:
    """``P`` as a short table (study, parameter, value). A parameter that several studies share with the
    same value is listed once, as study ``(shared)``; a tuple of more than four numbers is summarised as
    ``n values in [a, b]``, a nested setting (the local search) as ``search.radii`` etc."""

    def fmt(v: Any) -> str:
        if isinstance(v, tuple) and len(v) > 4:
            return f"{len(v)} values in [{min(v):.3g}, {max(v):.3g}]"
        if isinstance(v, tuple):
            return ", ".join(f"{x:.3g}" for x in v)
        return f"{v:g}" if isinstance(v, float) else str(v)

    rows = []
    for study in dataclasses.fields(P):
        p = getattr(P, study.name)
        for f in dataclasses.fields(p):
            v = getattr(p, f.name)
            items = [(f"{f.name}.{g.name}", getattr(v, g.name)) for g in dataclasses.fields(v)] \
                if dataclasses.is_dataclass(v) else [(f.name, v)]
            rows += [{"study": study.name, "parameter": k, "value": fmt(x)} for k, x in items]
    df = pd.DataFrame(rows)
    by_param = df.groupby("parameter", sort=False)["value"]
    shared = by_param.transform(lambda v: v.nunique() == 1) & (by_param.transform("size") > 1)
    common = df[shared].drop_duplicates("parameter").assign(study="(shared)")
    return pd.concat([common, df[~shared]]).set_index(["study", "parameter"])

def _t(x: Any, device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=float), dtype=torch.float64, device=device)


def _search(fam: H.Family, centres: torch.Tensor, X, y, search: Search, *, seed: int, offset: int,
            mask: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """:func:`lib.margins.local_search` at ``centres`` ``[K, P]`` with ``search``'s settings, each centre's
    starts from its own generator (chapter seed, ``offset``, centre index)."""
    gens = [torch.Generator(device=centres.device).manual_seed(seed * 1_000_003 + offset + 7919 * k)
            for k in range(len(centres))]
    return M.local_search(fam, centres, X, y, np.asarray(search.radii), starts=search.starts, iters=search.iters,
                          mask=mask, generator=gens)


def _search_rows(point: str, res: dict[str, np.ndarray], labels: Sequence[str] | None = None) -> pd.DataFrame:
    """Tidy rows (point, centre, radius, gain) of a batched local search."""
    K = res["gain"].shape[0]
    labels = list(labels) if labels is not None else list(range(K))
    return pd.DataFrame([{"point": point, "centre": labels[k], "radius": r, "gain": g}
                         for k in range(K) for r, g in zip(res["radius"], res["gain"][k])])


# -- data -----------------------------------------------------------------------------------------
def teacher(d: int, seed: int) -> np.ndarray:
    """The unit teacher direction ``beta_0`` of :func:`separable_data`."""
    b0 = np.random.default_rng([seed, 2]).standard_normal(d)
    return b0 / np.linalg.norm(b0)


def separable_data(n: int, d: int, seed: int, margin: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian points labelled by a random teacher ``beta_0`` and pushed ``margin`` away from its hyperplane."""
    rng = np.random.default_rng([seed, 2])
    b0 = rng.standard_normal(d)
    b0 /= np.linalg.norm(b0)
    X = rng.standard_normal((n, d))
    y = np.where(X @ b0 >= 0, 1.0, -1.0)
    return X + margin * y[:, None] * b0[None, :], y


def relu_data(delta: float) -> tuple[np.ndarray, np.ndarray]:
    """``x_1 = (1, delta)``, ``x_2 = (-1, delta)``, both labelled +1."""
    return np.array([[1.0, delta], [-1.0, delta]]), np.array([1.0, 1.0])


def relu_optimum_gamma(delta: float) -> float:
    """Max normalized margin of a depth-2 ReLU net (width >= 2) on :func:`relu_data`: one neuron per
    point, ``gamma* = ||x_i|| / 4 = sqrt(1 + delta^2) / 4`` (book's derivation)."""
    return float(np.sqrt(1 + delta**2) / 4)


def diag_face_gamma(t: np.ndarray, depth: int) -> np.ndarray:
    """Normalized margin of the balanced depth-L diagonal net with ``beta = (1/2 + t, 1/2 - t)`` on
    ``x = (1, 1)``: ``gamma = 1 / (L sum_j |beta_j|^{2/L})^{L/2}``."""
    b = np.stack([0.5 + t, 0.5 - t], -1)
    return 1.0 / (depth * (np.abs(b) ** (2.0 / depth)).sum(-1)) ** (depth / 2)


def diag_face_point(t: float, depth: int) -> np.ndarray:
    """The balanced diagonal net ``u_l = (|1/2 + t|^{1/L}, |1/2 - t|^{1/L})`` (flat, all layers) realising
    ``beta = (1/2 + t, 1/2 - t)`` on the feasible face of ``x = (1, 1)``, ``q = 1``."""
    u = np.abs(np.array([0.5 + t, 0.5 - t])) ** (1.0 / depth)
    return np.tile(u, depth)


# -- fully connected linear ---------------------------------------------------------------------------
def _balanced_fc(beta: np.ndarray, width: int, depth: int) -> np.ndarray:
    """A balanced rank-one FC linear net with end-to-end predictor ``beta`` (flat parameters)."""
    nb = np.linalg.norm(beta)
    s = nb ** (1.0 / depth)
    e = np.zeros(width)
    e[0] = 1.0
    layers = [s * np.outer(e, beta / nb)] + [s * np.outer(e, e)] * (depth - 2) + [s * e[None, :]]
    return np.concatenate([w.ravel() for w in layers])


def _fc_measures(fam: H.Family, theta: torch.Tensor, Xt, yt, beta_svm: np.ndarray) -> dict[str, np.ndarray]:
    """gamma, ``1 - cos(beta, beta_SVM)``, the largest ``sigma_2/sigma_1`` of the hidden layers and the
    KKT residual of each run."""
    k = M.kkt(fam, theta, Xt, yt)
    beta = fam.predictor(theta).cpu().numpy()
    cos = beta @ beta_svm / np.linalg.norm(beta, axis=1) / np.linalg.norm(beta_svm)
    sv = [torch.linalg.svdvals(W) for W in fam.unpack(theta)[:-1]]
    defect = torch.stack([s[:, 1] / s[:, 0] for s in sv], 1).max(1).values.cpu().numpy()
    return {"gamma": k.gamma, "align": 1 - cos, "rank1_defect": defect, "kkt_residual": k.residual, "theta": k.theta}


def fc_linear(
    *, n: int, d: int, width: int, depths: Sequence[int], inits: int, steps: int, early: int, eta: float,
    eta_min: float, temp: float, device, seed: int,
) -> dict[str, Any]:
    """Fully connected linear nets of each depth from ``inits`` Gaussian initialisations vs the L2 SVM.

    Measures per run, at the limit and (control: annealing left out) at the end of the constant-step
    phase: gamma against ``gamma_SVM / L^{L/2}``, alignment ``1 - cos(beta, beta_SVM)``, the layers'
    rank-one defect ``sigma_2 / sigma_1`` (also at step ``early``), the KKT residual; for the first run of each depth the
    per-layer QP ratios (1 when every layer is optimal given the others). Control point: the balanced
    rank-one net along the teacher direction (feasible, not the SVM), with its KKT residual and
    per-layer ratios.
    """
    FcLinear(n=n, d=d, width=width, depths=tuple(depths), inits=inits, steps=steps, early=early, eta=eta,
             eta_min=eta_min, temp=temp)
    X, y = separable_data(n, d, seed)
    beta_svm, g_svm = M.svm_l2(X, y)
    Xt, yt = _t(X, device), _t(y, device)
    gen = torch.Generator(device=device).manual_seed(seed * 1_000_003 + 11)
    mid = round(steps * 0.5)  # the end of the constant-step phase of lib.margins.train (anneal = 0.5)
    rows, curves, layer_rows, off_rows = [], {}, [], []
    for L in depths:
        fam = H.fc(d, width, L)
        th0 = torch.randn(inits, fam.size, generator=gen, dtype=torch.float64, device=device) / np.sqrt(width)
        tr = M.train(fam, th0, Xt, yt, steps=steps, eta=eta, eta_min=eta_min, temp=temp, record_every=20,
                     keep=(early, mid))
        lim = _fc_measures(fam, tr.theta, Xt, yt, beta_svm)
        una = _fc_measures(fam, tr.snapshots[mid], Xt, yt, beta_svm)
        ear = _fc_measures(fam, tr.snapshots[early], Xt, yt, beta_svm)
        target = g_svm / L ** (L / 2)
        for r in range(inits):
            rows.append({"depth": L, "run": r, "gamma": lim["gamma"][r], "target": target,
                         "align": lim["align"][r], "rank1_defect": lim["rank1_defect"][r],
                         "kkt_residual": lim["kkt_residual"][r], "gamma_unannealed": una["gamma"][r],
                         "align_unannealed": una["align"][r], "rank1_early": ear["rank1_defect"][r],
                         "kkt_unannealed": una["kkt_residual"][r]})
        curves[L] = {"steps": tr.steps, "gamma": tr.gamma}
        off = _balanced_fc(teacher(d, seed), width, L)
        ko = M.kkt(fam, _t(off[None], device), Xt, yt)
        for layer in range(L):
            layer_rows.append({"depth": L, "layer": layer + 1, "ratio": M.layer_qp(fam, lim["theta"][0], X, y, layer),
                               "ratio_teacher_point": M.layer_qp(fam, ko.theta[0], X, y, layer)})
        off_rows.append({"depth": L, "gamma": ko.gamma[0], "kkt_residual": ko.residual[0]})
    return {"X": X, "y": y, "beta_svm": beta_svm, "gamma_svm": g_svm, "runs": pd.DataFrame(rows),
            "curves": curves, "per_layer": pd.DataFrame(layer_rows), "teacher_point": pd.DataFrame(off_rows),
            "unannealed_step": mid}


# -- diagonal linear ----------------------------------------------------------------------------------
def diagonal(
    *, inits: int, steps: int, search: Search, early: int, eta: float, eta_min: float, temp: float, device,
    seed: int,
) -> dict[str, Any]:
    """Diagonal linear nets: the three constructions of the chapter, each one batched run.

    - ``d2``, depth 2, ``x = (1, 2)``: run 0 the special init ``u = (1, 1), v = (1, -1)``, runs 1..inits
      Gaussian; the control run ``v_2(0) = -1 + PERTURB`` is reported apart (``perturbed_gamma``), and
      the special run's parameters at step ``early`` (``early_*``: not yet converged);
    - ``d2dense``, depth 2, ``x_1 = (1, 2), x_2 = (2, 1)``: Gaussian inits, whose limits have every weight
      non-zero (the l1-SVM solution ``beta = (1/3, 1/3)`` is dense); the control run from
      ``u = (0, 1), v = (0, 1/2)`` (a zero weight, ``zero_weight_*``); the hand-built sparse point
      ``u = v = (0, 1)`` (key ``"sparse"``), a KKT point with ``z = (2, 1)`` that is not global;
    - ``d3``, depth 3, ``x = (1, 1)``: run 0 symmetric ``u_l = (1/2, 1/2)``, run 1 ``u_3 = (0.51, 0.5)``,
      runs 2.. Gaussian; the face point ``t = 0.1`` (balanced, feasible, not a limit) as the control of
      the KKT and per-layer checks.

    Local search (``search``) at the trained depth-2 special limit, the depth-3 symmetric limit and, as
    the not-KKT control, the depth-2 special run at step ``early``. ``lam`` is the multiplier of the
    first point; ``lam_all`` holds all of them.
    """
    Diagonal(inits=inits, steps=steps, search=search, early=early, eta=eta, eta_min=eta_min, temp=temp)
    gen = torch.Generator(device=device).manual_seed(seed * 1_000_003 + 21)
    out: dict[str, Any] = {}
    specs = {  # name: depth, data, special inits (first), control inits (last)
        "d2": (2, np.array([[1.0, 2.0]]), np.array([[1.0, 1.0, 1.0, -1.0]]), np.array([[1.0, 1.0, 1.0, -1.0 + PERTURB]])),
        "d2dense": (2, np.array([[1.0, 2.0], [2.0, 1.0]]), np.zeros((0, 4)), np.array([[0.0, 1.0, 0.0, 0.5]])),
        "d3": (3, np.array([[1.0, 1.0]]), np.array([[0.5] * 6, [0.5] * 4 + [0.51, 0.5]]), np.zeros((0, 6))),
    }
    for name, (L, X, special, control) in specs.items():
        fam = H.diagonal(2, L)
        y = np.ones(len(X))
        rand = torch.randn(inits, fam.size, generator=gen, dtype=torch.float64, device=device)
        th0 = torch.cat([_t(special, device), rand, _t(control, device)], 0)
        Xt, yt = _t(X, device), _t(y, device)
        tr = M.train(fam, th0, Xt, yt, steps=steps, eta=eta, eta_min=eta_min, temp=temp, record_every=10,
                     keep=(early,))
        k = M.kkt(fam, tr.theta, Xt, yt)
        beta = fam.predictor(_t(k.theta, device)).cpu().numpy()
        _, g_l1 = M.svm_l1(X, y)
        minw = np.abs(k.theta).reshape(len(k.theta), L, 2).min(axis=(1, 2)) / np.linalg.norm(k.theta, axis=1)
        z = M.l1_dual_vector(k.lam, X, y)
        m = len(th0) - len(control)  # the runs shown in the chapter; the control runs come after them
        out[name] = {
            "X": X, "depth": L, "n_special": len(special), "steps": tr.steps, "gamma": tr.gamma[:, :m],
            "final_gamma": tr.gamma[-1, :m], "theta": k.theta[:m], "beta": beta[:m], "lam": k.lam[:m, 0],
            "lam_all": k.lam[:m], "z": z[:m], "residual": k.residual[:m], "gamma_l1": g_l1, "min_weight": minw[:m],
            "dead_dual": dead_coordinate_dual(k.theta[:m], z[:m], L),
            "per_layer": [M.layer_qp(fam, k.theta[0], X, y, layer) for layer in range(L)],
        }
        ke = M.kkt(fam, tr.snapshots[early][:1], Xt, yt)
        out[name]["early_residual"] = float(ke.residual[0])
        if name == "d2":
            out[name]["perturbed_gamma"] = float(tr.gamma[-1, -1])
            out[name]["early_theta"] = ke.theta[0]
        if name == "d2dense":
            out[name].update(zero_weight_gamma=float(tr.gamma[-1, -1]), zero_weight_min_weight=float(minw[-1]))
    # the sparse point u = v = (0, 1) on the two-point data: a KKT point (only x_2 active) that is not global
    X, fam2 = specs["d2dense"][1], H.diagonal(2, 2)
    Xt, yt = _t(X, device), _t(np.ones(len(X)), device)
    th_sp = _t([[0.0, 1.0, 0.0, 1.0]], device)
    ks = M.kkt(fam2, th_sp, Xt, yt)
    out["d2dense"]["sparse"] = {
        "theta": th_sp.cpu().numpy()[0], "residual": float(ks.residual[0]), "lam": ks.lam[0],
        "z": M.l1_dual_vector(ks.lam, X, np.ones(len(X)))[0],
        "gamma": float(H.normalized_margin(fam2, th_sp, Xt, yt)[0]),
    }
    # the depth-3 face point t = 0.1: feasible, balanced, not a KKT point
    fam3, X3 = H.diagonal(2, 3), specs["d3"][1]
    face = diag_face_point(0.1, 3)
    kf = M.kkt(fam3, _t(face[None], device), _t(X3, device), _t([1.0], device))
    out["d3"]["face_point"] = {"t": 0.1, "residual": float(kf.residual[0]),
                               "per_layer": [M.layer_qp(fam3, kf.theta[0], X3, np.ones(1), layer) for layer in range(3)]}
    # improving curves: revive coordinate 2 at the depth-2 bad point; move along the depth-3 face
    y = np.array([1.0])
    eps = np.geomspace(1e-4, 1e-1, 13)
    curve = np.stack([np.ones_like(eps), eps, np.ones_like(eps), eps], 1)  # u = (1, e), v = (1, e)
    th_bad = np.array([[1.0, 0.0, 1.0, 0.0]])
    X2, yt = _t(specs["d2"][1], device), _t(y, device)
    g_curve = H.normalized_margin(fam2, _t(curve, device), X2, yt).cpu().numpy()
    g_bad = H.normalized_margin(fam2, _t(th_bad, device), X2, yt).cpu().numpy()[0]
    unit = curve / np.linalg.norm(curve, axis=1, keepdims=True)
    dist = np.linalg.norm(unit - th_bad / np.linalg.norm(th_bad), axis=1)
    out["curve_d2"] = pd.DataFrame({"eps": eps, "distance": dist, "gain": g_curve - g_bad})
    t = np.linspace(-0.5, 0.5, 201)
    ts = np.geomspace(1e-3, 1e-1, 9)
    out["face_d3"] = pd.DataFrame({"t": t, "gamma": diag_face_gamma(t, 3),
                                   "norm2": 3 * (np.abs(np.stack([0.5 + t, 0.5 - t], 1)) ** (2 / 3)).sum(1)})
    out["curve_d3"] = pd.DataFrame({"t": ts, "gain": diag_face_gamma(ts, 3) - diag_face_gamma(np.zeros(1), 3)[0]})
    # local search at the trained limits (and at the not-yet-converged special iterate, the control)
    s2 = _search(fam2, _t(np.stack([out["d2"]["theta"][0], out["d2"]["early_theta"]]), device), X2, yt, search,
                 seed=seed, offset=31)
    s3 = _search(fam3, _t(out["d3"]["theta"][:1], device), _t(X3, device), yt, search, seed=seed, offset=32)
    out["local"] = pd.concat([
        _search_rows("diagonal depth 2, special-init limit", {k: v[:1] if k != "radius" else v for k, v in s2.items()}),
        _search_rows("diagonal depth 3, symmetric limit", s3),
        _search_rows(NOT_KKT,
                     {k: v[1:] if k != "radius" else v for k, v in s2.items()}),
    ], ignore_index=True)
    return out


# -- depth-2 ReLU ------------------------------------------------------------------------------------
def relu_points(delta: float, split: float = 0.6) -> dict[str, np.ndarray]:
    """Analytic points of (P) on :func:`relu_data` (width 2, layout ``w_A, w_B, v_A, v_B``), ``min q = 1``:
    the dead-neuron KKT point (A along ``(0, 1)``, B zero), the split point (A and B along ``(0, 1)``
    with mass fractions ``split`` and ``1 - split``) and the global optimum (one neuron per point)."""
    s = 1 / np.sqrt(delta)
    sa, sb = np.sqrt(split) * s, np.sqrt(1 - split) * s
    # v_j = |w_j| = s_j; q = delta (s_A^2 + s_B^2) = 1
    dead = np.array([0.0, s, 0.0, 0.0, s, 0.0])
    spl = np.array([0.0, sa, 0.0, sb, sa, sb])
    rho = np.sqrt(1 + delta**2)
    c = 1 / np.sqrt(rho)
    opt = np.array([c / rho, c * delta / rho, -c / rho, c * delta / rho, c, c])
    return {"dead": dead, "split": spl, "optimum": opt}


def relu_improving_curve(delta: float, eps: np.ndarray) -> np.ndarray:
    """Points ``theta_eps`` (``min q = 1``) leaving the dead-neuron point: neuron B revived along
    ``x_1/||x_1||`` with weights ``eps``, neuron A rotated by ``phi`` toward ``x_2`` so that
    ``q_1 = q_2`` and rescaled so that ``q = 1`` (book's construction). ``||theta_eps||^2`` decreases
    by ``2 eps^2 (max h - 1) + O(eps^4)``."""
    rho = np.sqrt(1 + delta**2)
    u = np.array([1.0, delta]) / rho
    # q_1 = s^2 (delta cos phi - sin phi) + eps^2 rho, q_2 = s^2 (delta cos phi + sin phi)
    # q_1 = q_2  <=>  2 s^2 sin phi = eps^2 rho ; q_2 = 1 fixes s
    s2 = (1 - eps**2 * rho / 2) / delta
    for _ in range(50):  # fixed point for cos(phi)
        phi = np.arcsin(eps**2 * rho / (2 * s2))
        s2 = (1 - eps**2 * rho / 2) / (delta * np.cos(phi))
    s = np.sqrt(s2)
    wA = s[:, None] * np.stack([-np.sin(phi), np.cos(phi)], 1)
    wB = eps[:, None] * u[None, :]
    return np.concatenate([wA, wB, s[:, None], eps[:, None]], 1)


def relu_width2(
    *, steps: int, search: Search, early: int, delta: float, eta: float, eta_min: float, temp: float, device,
    seed: int,
) -> dict[str, Any]:
    """The depth-2 ReLU constructions on ``x_{1,2} = (+-1, delta)``.

    Trains from two initialisations (run 0: neuron B dead on both points, ``w_B = (0.1, -1)``, A active on
    both; run 1: one neuron per point), checks KKT (and, as the control, run 0 at step ``early``),
    computes the certificate ``max_u h(u)``, the explicit improving curve at the dead-neuron point, the
    local search at the trained dead-neuron limit, and the per-layer statements at the split point.
    """
    ReluWidth2(steps=steps, search=search, early=early, delta=delta, eta=eta, eta_min=eta_min, temp=temp)
    X, y = relu_data(delta)
    Xt, yt = _t(X, device), _t(y, device)
    fam = H.relu(2, 2)
    th0 = np.array([[0.1, 1.0, 0.1, -1.0, 0.5, 0.5], [1.0, 0.3, -1.0, 0.3, 0.5, 0.5]])
    tr = M.train(fam, _t(th0, device), Xt, yt, steps=steps, eta=eta, eta_min=eta_min, temp=temp, record_every=10,
                 keep=(early,))
    k = M.kkt(fam, tr.theta, Xt, yt)
    hmax, umax = M.relu_dual_max(k.lam, X, y)
    ang = np.linspace(-np.pi, np.pi, 721)
    h_curve = M.relu_dual(k.lam, X, y, np.stack([np.cos(ang), np.sin(ang)], 1))
    pts = relu_points(delta)
    eps = np.geomspace(1e-4, 1e-1, 13)
    curve = relu_improving_curve(delta, eps)
    g_curve = H.normalized_margin(fam, _t(curve, device), Xt, yt).cpu().numpy()
    g_pts = {n: float(H.normalized_margin(fam, _t(p[None], device), Xt, yt)[0]) for n, p in pts.items()}
    unit = curve / np.linalg.norm(curve, axis=1, keepdims=True)
    dist = np.linalg.norm(unit - pts["dead"] / np.linalg.norm(pts["dead"]), axis=1)
    ks = M.kkt(fam, _t(np.stack([pts["dead"], pts["split"]]), device), Xt, yt)
    # per-layer global at the split point: with v fixed, put one neuron on each point instead
    sp = pts["split"]
    vA, vB = sp[4], sp[5]
    rho = np.sqrt(1 + delta**2)
    layer1_now = sp[:4] @ sp[:4]
    layer1_alt = 1 / (vA * rho) ** 2 + 1 / (vB * rho) ** 2  # |w_A| = 1/(v_A rho), |w_B| = 1/(v_B rho)
    loc = _search(fam, tr.theta[:1], Xt, yt, search, seed=seed, offset=33)
    return {
        "X": X, "y": y, "steps": tr.steps, "gamma": tr.gamma, "final_gamma": tr.gamma[-1], "theta": k.theta,
        "lam": k.lam, "residual": k.residual, "hmax": hmax, "umax": umax, "angles": ang, "h": h_curve,
        "gamma_opt": relu_optimum_gamma(delta), "points": pts, "gamma_points": g_pts,
        "curve": pd.DataFrame({"eps": eps, "distance": dist, "gain": g_curve - g_pts["dead"]}),
        "points_kkt_residual": ks.residual, "points_lam": ks.lam,
        "split_hmax": M.relu_dual_max(ks.lam[1:], X, y)[0][0],
        "layer1_ratio": layer1_alt / layer1_now,
        "pre_split": fam.preactivations(_t(sp[None], device), Xt).cpu().numpy()[0],
        "early_residual": float(M.kkt(fam, tr.snapshots[early][:1], Xt, yt).residual[0]),
        "local": _search_rows("ReLU dead-neuron limit", loc),
    }


def classify_relu(fam: H.Family, theta: torch.Tensor, X: torch.Tensor, y: torch.Tensor, delta: float,
                  mask: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """Class of each depth-2 ReLU limit on :func:`relu_data` (one of :data:`CLASSES`).

    A limit is *global* when its gamma is within :data:`CLASS_TOL` (relative) of ``gamma*`` and *bad*
    when within it of ``delta/2`` (one direction serves both points); a bad limit has a *zero neuron*
    when a neuron's share of ``||theta||`` is below :data:`ZERO_SHARE` (dead neurons the growing ones leave
    behind), and is *split* when it has none and every neuron lies along ``(0, 1)`` (``1 - cos`` below
    1e-6) with ``v_j > 0``. ``mask`` ``[B, m]`` marks each run's real neurons (narrower nets are padded
    with zero neurons, which do not count). Returns the class, gamma, the numbers of zero neurons and of
    neurons along ``(0, 1)``, and whether the run separates the data."""
    wf, vf = fam.unpack(theta)
    real = torch.ones_like(vf) if mask is None else mask.to(vf)
    share = torch.sqrt(wf.pow(2).sum(-1) + vf.pow(2)) / theta.norm(dim=1, keepdim=True)
    n_zero = ((share < ZERO_SHARE) & (real > 0)).sum(1).cpu().numpy()
    cos_axis = wf[..., 1] / wf.norm(dim=-1).clamp_min(1e-300)  # cosine between w_j and (0, 1)
    n_axis = ((share >= ZERO_SHARE) & (real > 0) & (cos_axis > 1 - 1e-6) & (vf > 0)).sum(1).cpu().numpy()
    width = real.sum(1).cpu().numpy()
    qmin = H.margins(fam, theta, X, y).min(1).values.cpu().numpy()
    g = (H.margins(fam, theta, X, y).min(1).values / theta.norm(dim=1) ** 2).cpu().numpy()
    g_opt, g_bad = relu_optimum_gamma(delta), delta / 2
    bad = np.abs(g - g_bad) <= CLASS_TOL * g_bad
    cls = np.select(
        [qmin <= 0, np.abs(g - g_opt) <= CLASS_TOL * g_opt, bad & (n_zero > 0), bad & (n_axis == width), bad],
        list(CLASSES[:5]), CLASSES[5])
    return {"limit": cls, "gamma": g, "n_zero": n_zero, "n_axis": n_axis, "separated": qmin > 0}


# -- initialisations from open sets --------------------------------------------------------------------
def cone_sample(rng: np.random.Generator, n: int, lo: float, hi: float) -> np.ndarray:
    """``n`` standard Gaussian vectors of R^2 conditioned on their angle lying in ``(lo, hi)``: the angle
    uniform there, the radius chi-distributed with 2 degrees of freedom (``[n, 2]``)."""
    phi = rng.uniform(lo, hi, n)
    r = np.sqrt(rng.chisquare(2, n))
    return np.stack([r * np.cos(phi), r * np.sin(phi)], 1)


def open_set_cones(delta: float) -> dict[str, tuple[float, float]]:
    """Angular intervals of the input weight ``w`` on :func:`relu_data`: active on both points
    (``|w_1| < delta w_2``), dead on both (``delta w_2 < -|w_1|``), active on ``x_1`` only, on ``x_2`` only."""
    a = math.atan(delta)
    return {"both": (math.pi / 2 - a, math.pi / 2 + a), "dead": (-math.pi / 2 - a, -math.pi / 2 + a),
            "x1 only": (-(math.pi / 2 - a), math.pi / 2 - a), "x2 only": (math.pi / 2 + a, 3 * math.pi / 2 - a)}


#: the open sets of initialisations of :func:`open_sets`: (cone of w_A, sign of v_A, cone of w_B, sign of v_B),
#: sign 0 meaning unrestricted
OPEN_SETS = {
    "split set": ("both", 1, "both", 1),
    "dead set": ("both", 1, "dead", 0),
    "one per point": ("x1 only", 1, "x2 only", 1),
}


def open_set_probability(name: str, delta: float) -> float:
    """Gaussian probability (``w_j, v_j ~ N(0, 1)``) of the open set ``name`` of :data:`OPEN_SETS`, up to
    the exchange of the two neurons (book's computation: a cone of angle ``phi`` has probability
    ``phi / (2 pi)``, a sign of ``v`` one half)."""
    cones = open_set_cones(delta)
    ca, sa, cb, sb = OPEN_SETS[name]
    p = 1.0
    for c, s in ((ca, sa), (cb, sb)):
        lo, hi = cones[c]
        p *= (hi - lo) / (2 * math.pi) * (0.5 if s else 1.0)
    return p if (ca, sa) == (cb, sb) else 2 * p


def open_sets(
    *, n: int, steps: int, search: Search, local_points: int, delta: float, eta: float, eta_min: float,
    temp: float, temp_control: float, device, seed: int,
) -> dict[str, Any]:
    """Depth-2 ReLU nets of width 2 on :func:`relu_data` from ``n`` initialisations drawn from each open
    set of :data:`OPEN_SETS` (Gaussian conditioned on the set), plus, as the control, the split set
    trained with the cap ``temp_control`` (the other studies' cap). All ``4 n`` runs are one batch.

    Per run: class (:func:`classify_relu`), gamma, KKT residual, smallest neuron share. Local search
    (``search``) at the first ``local_points`` split limits of the split set whose smaller neuron holds
    at least :data:`SPLIT_SHARE` of the norm (all parameters, and the first layer only), the first
    zero-neuron limits of the dead set, and the first such split limits of the control run (all
    parameters, first layer only)."""
    OpenSets(n=n, steps=steps, search=search, local_points=local_points, delta=delta, eta=eta, eta_min=eta_min,
             temp=temp, temp_control=temp_control)
    X, y = relu_data(delta)
    Xt, yt = _t(X, device), _t(y, device)
    fam = H.relu(2, 2)
    cones = open_set_cones(delta)
    rng = np.random.default_rng([seed, 61])
    thetas, labels = [], []
    for name, (ca, sa, cb, sb) in OPEN_SETS.items():
        w = np.stack([cone_sample(rng, n, *cones[ca]), cone_sample(rng, n, *cones[cb])], 1)  # [n, 2, 2]
        v = rng.standard_normal((n, 2))
        v = np.where(np.array([sa, sb]) != 0, np.abs(v) * np.array([sa, sb]), v)
        thetas.append(np.concatenate([w.reshape(n, 4), v], 1))
        labels += [name] * n
    thetas.append(thetas[0])  # the control: the split set again, with the cap temp_control
    labels += ["split set"] * n
    caps = [temp] * (3 * n) + [temp_control] * n
    th0 = _t(np.concatenate(thetas), device)
    tr = M.train(fam, th0, Xt, yt, steps=steps, eta=eta, eta_min=eta_min, temp=caps, record_every=max(steps // 20, 1))
    check_finite(tr.theta, what="open-set ReLU training", hint="reduce the step size eta")
    c = classify_relu(fam, tr.theta, Xt, yt, delta)
    k = M.kkt(fam, tr.theta, Xt, yt)
    wf, vf = fam.unpack(tr.theta)
    share = (torch.sqrt(wf.pow(2).sum(-1) + vf.pow(2)) / tr.theta.norm(dim=1, keepdim=True)).min(1).values
    runs = pd.DataFrame({"set": labels, "cap": caps, "limit": c["limit"], "gamma": c["gamma"],
                         "n_zero": c["n_zero"], "min_share": share.cpu().numpy(), "kkt_residual": k.residual})
    well_split = (runs["limit"] == "bad, split") & (runs["min_share"] >= SPLIT_SHARE)
    # local-search verdicts on trained limits (one batch; each centre's starts from its own generator)
    pick = {
        SPLIT: (runs["set"] == "split set") & (runs["cap"] == temp) & well_split,
        ZERO: (runs["set"] == "dead set") & (runs["limit"] == "bad, zero neuron"),
        SPLIT_CONTROL: (runs["cap"] == temp_control) & well_split,
    }
    layer1 = torch.tensor([1.0] * 4 + [0.0] * 2, dtype=torch.float64, device=device)
    full = torch.ones(6, dtype=torch.float64, device=device)
    centres, masks, names, idx = [], [], [], []
    for name, sel in pick.items():
        ids = np.flatnonzero(sel.to_numpy())[:local_points]
        variants = [("", full)] + ([(LAYER1, layer1)] if name != ZERO else [])
        for suffix, mk in variants:
            for i in ids:
                centres.append(tr.theta[i])
                masks.append(mk)
                names.append(name + suffix)
                idx.append(int(i))
    res = _search(fam, torch.stack(centres), Xt, yt, search, seed=seed, offset=71, mask=torch.stack(masks))
    local = pd.DataFrame([{"point": names[j], "centre": idx[j], "radius": r, "gain": g}
                          for j in range(len(names)) for r, g in zip(res["radius"], res["gain"][j])])
    prob = {name: open_set_probability(name, delta) for name in OPEN_SETS}
    return {"runs": runs, "local": local, "probability": prob, "n": n}


def open_set_summary(res: dict[str, Any]) -> pd.DataFrame:
    """Per open set (and the control cap): runs, Gaussian probability of the set, and the fraction of
    its runs ending in each class of :data:`CLASSES` (zero columns dropped), with the largest KKT
    residual of its split limits."""
    runs = res["runs"]
    rows = []
    for (name, cap), g in runs.groupby(["set", "cap"], sort=False):
        row = {"set": name, "cap T": cap, "runs": len(g), "P(set)": res["probability"][name]}
        row.update({c: float((g["limit"] == c).mean()) for c in CLASSES})
        split = g[g["limit"] == "bad, split"]
        row["max KKT residual, split limits"] = split["kkt_residual"].max() if len(split) else np.nan
        rows.append(row)
    df = pd.DataFrame(rows).set_index(["set", "cap T"])
    return df.loc[:, (df != 0).any(axis=0)]


# -- random initialisations ---------------------------------------------------------------------------
def random_relu(
    *, delta: float, widths: Sequence[int], inits: int, init_scale: float, steps: int, eta: float, eta_min: float,
    temp: float, device, seed: int, compare: int = 0, max_batch: int = 4096,
) -> pd.DataFrame:
    """Depth-2 ReLU nets of several widths from Gaussian inits (``w, v ~ N(0, init_scale^2)``), all widths
    in one batch (narrower nets padded with zero neurons, which stay exactly zero). One row per run:
    whether it separates, its final gamma, the class of its limit (:func:`classify_relu`), its numbers of
    zero neurons and of neurons along ``(0, 1)``, its KKT residual, and, for the first ``compare`` inits
    of each width, the class of the limit reached by the same initialisation under the *uncapped*
    trainer (``limit_uncapped``, empty for the others: the explicit Euler scheme of the time-rescaled
    flow, a time change of gradient flow up to the discretisation).

    The grid of runs goes through :func:`lib.sweep.run` in shards of at most ``max_batch`` runs, in
    process or on a Dask cluster (``--cluster``/``--scheduler``), with the same numbers either way: each
    run draws its initialisation from its own seed (chapter seed, width, init index)."""
    RandomRelu(widths=tuple(widths), inits=inits, steps=steps, compare=compare, init_scale=init_scale, delta=delta,
               eta=eta, eta_min=eta_min, temp=temp)
    check_positive("max_batch", max_batch, integer=True)
    runs = grid(width=widths, init=range(inits))
    shard = functools.partial(
        random_relu_shard, delta=delta, mmax=max(widths), init_scale=init_scale, steps=steps, eta=eta,
        eta_min=eta_min, temp=temp, seed=seed, compare=compare,
    )
    out = sweep.run("ch02-random-relu", shard, runs, max_batch=max_batch, device=str(device))
    return out.drop(columns=["shard_worker", "shard_device"])


def random_relu_shard(
    runs: pd.DataFrame, device: str, *, delta: float, mmax: int, init_scale: float, steps: int, eta: float,
    eta_min: float, temp: float, seed: int, compare: int = 0,
) -> pd.DataFrame:
    """One shard of :func:`random_relu`: its runs trained as one tensor program with the cap ``temp``,
    and those with ``init < compare`` once more without the cap, in the same batch."""
    X, y = relu_data(delta)
    Xt, yt = _t(X, device), _t(y, device)
    fam = H.relu(2, mmax)
    B = len(runs)
    w = torch.zeros(B, mmax, 2, dtype=torch.float64)
    v = torch.zeros(B, mmax, dtype=torch.float64)
    for i, (width, init) in enumerate(zip(runs["width"], runs["init"])):
        g = torch.Generator().manual_seed(seed * 1_000_003 + 41 + 7919 * int(width) + 104_729 * int(init))
        w[i, :width] = torch.randn(width, 2, generator=g, dtype=torch.float64) * init_scale
        v[i, :width] = torch.randn(width, generator=g, dtype=torch.float64) * init_scale
    mask = (torch.arange(mmax)[None, :] < torch.tensor(runs["width"].tolist())[:, None]).double().to(device)
    th0 = fam.pack([w.to(device), v.to(device)])
    twin = np.flatnonzero(runs["init"].to_numpy() < compare)
    tr = M.train(fam, torch.cat([th0, th0[twin]]), Xt, yt, steps=steps, eta=eta, eta_min=eta_min,
                 temp=[temp] * B + [None] * len(twin), record_every=max(steps // 20, 1))
    check_finite(tr.theta, what="random-init ReLU training", hint="reduce the step size eta",
                 runs=pd.concat([runs, runs.iloc[twin]]))
    capped = classify_relu(fam, tr.theta[:B], Xt, yt, delta, mask)
    free = classify_relu(fam, tr.theta[B:], Xt, yt, delta, mask[twin])
    uncapped = np.full(B, "", dtype=object)
    uncapped[twin] = free["limit"]
    k = M.kkt(fam, tr.theta[:B], Xt, yt)
    return tidy(runs, separated=capped["separated"], gamma=capped["gamma"], limit=capped["limit"],
                n_zero=capped["n_zero"], n_axis=capped["n_axis"], kkt_residual=k.residual,
                limit_uncapped=uncapped)


def random_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Counts and fractions per width: separated among all; each limit class among the separated; the
    fraction of runs whose class is the same under the uncapped trainer; the largest KKT residual of
    the bad limits."""
    rows = []
    for wdt, g in df.groupby("width"):
        sep = g[g["separated"]]
        bad = sep[sep["limit"].str.startswith("bad")]
        rows.append({
            "width": wdt, "inits": len(g), "separated": len(sep),
            "global": int((sep["limit"] == "global optimum").sum()),
            "bad (gamma=delta/2)": len(bad),
            "bad, with zero neuron": int((bad["limit"] == "bad, zero neuron").sum()),
            "bad, split": int((bad["limit"] == "bad, split").sum()),
            "other": int((sep["limit"] == "other").sum()),
            "P(bad | separated)": len(bad) / max(len(sep), 1),
            "compared uncapped": int((g["limit_uncapped"] != "").sum()),
            "same class uncapped": float((g["limit"] == g["limit_uncapped"])[g["limit_uncapped"] != ""].mean()),
            "max KKT residual (bad)": bad["kkt_residual"].max() if len(bad) else np.nan,
        })
    return pd.DataFrame(rows).set_index("width")


# -- escape times -------------------------------------------------------------------------------------
def escape(*, eps: Sequence[float], eta: float, max_steps: int, device, seed: int) -> dict[str, Any]:
    """Time to escape the special initialisations' bad points when perturbed by ``e`` (constant step
    ``eta``; a norm cap that binds only after the escape, against overflow): depth 2, ``v_2(0) = -1 + e`` on ``x = (1, 2)``; depth 3, ``u_{3,1}(0) = 1/2 + e``
    on ``x = (1, 1)``. A run has escaped when gamma passes halfway from the bad value to the optimum.

    Per depth and ``e`` (``table``): the escape step ``k``, the trainer's clock ``s = eta k``, and the
    gradient-flow time of the escape, ``log t = log sum_{j < k} eta ||theta_j||^{2-L} / loss(theta_j)``
    (the trainer's step ``eta`` of the clock ``s`` is ``dt = ||theta||^{2-L} ds / loss`` of gradient flow;
    a Riemann sum along the trainer's iterates, in the log domain). Also ``curves`` (gamma vs step per
    depth, ``[T, len(eps)]``), ``slope_pred_depth2`` (the depth-2 trainer is an exact linear recursion,
    whose escape step grows by ``1/log((1 + 2 eta)/(1 + eta))`` per unit of ``log(1/e)``) and
    ``flow_exponent_pred_depth2``: ``log t ~ q_esc`` grows like ``e^{-p}`` with
    ``p = 2 log(1 + eta) / log((1 + 2 eta)/(1 + eta))`` (2 in the limit eta -> 0; book's derivation).
    """
    Escape(eps=tuple(eps), max_steps=max_steps, eta=eta)
    e = np.asarray(eps, dtype=float)
    y = _t([1.0], device)
    cases = {
        2: (np.array([[1.0, 2.0]]), np.stack([np.ones_like(e), np.ones_like(e), np.ones_like(e), -1 + e], 1), 0.5, 1.0),
        3: (np.array([[1.0, 1.0]]), np.concatenate([np.full((len(e), 4), 0.5), 0.5 + e[:, None], np.full((len(e), 1), 0.5)], 1),
            diag_face_gamma(np.zeros(1), 3)[0], 3 ** -1.5),
    }
    frames, curves = [], {}
    for L, (X, th0, g_bad, g_opt) in cases.items():
        fam = H.diagonal(2, L)
        # one data point: the softmax weight is 1 and the dynamics of the direction is exactly scale
        # equivariant, so a norm cap changes nothing but keeps the margins below overflow; the cap
        # ||theta||^L = 1e200 / eta binds only far beyond the margins reached at any escape (q ~ 1e26 at
        # e = 1e-13), so the sum of dt up to the escape is not affected
        tr = M.train(fam, _t(th0, device), _t(X, device), y, steps=max_steps, eta=eta, eta_min=eta, anneal=0.0,
                     temp=1e200, record_every=1)
        thr = (g_bad + g_opt) / 2
        passed = tr.gamma >= thr
        k = np.where(passed.any(0), passed.argmax(0), -1)
        log_dt = np.log(eta) + (2 - L) * np.log(tr.norm) - tr.log_loss  # [T, runs]
        log_t = np.array([np.logaddexp.reduce(log_dt[:kk, j]) if kk > 0 else np.nan for j, kk in enumerate(k)])
        frames.append(pd.DataFrame({"depth": L, "eps": e, "log_inv_eps": np.log(1 / e),
                                    "steps": np.where(k >= 0, tr.steps[k], np.nan),
                                    "clock_s": np.where(k >= 0, eta * tr.steps[k], np.nan),
                                    "log_flow_time": np.where(k >= 0, log_t, np.nan),
                                    "gamma_bad": g_bad, "gamma_opt": g_opt}))
        curves[L] = {"steps": tr.steps, "gamma": tr.gamma}
    r = np.log((1 + 2 * eta) / (1 + eta))
    return {"table": pd.concat(frames, ignore_index=True), "curves": curves, "slope_pred_depth2": float(1 / r),
            "slope_flow_limit_depth2": float(1 / eta), "flow_exponent_pred_depth2": float(2 * np.log1p(eta) / r)}


# -- the smoothed margin ------------------------------------------------------------------------------
def smoothed(*, n: int, d: int, width: int, inits: int, h: float, scale_max: float, max_steps: int, q0: float,
             device, seed: int) -> dict[str, Any]:
    """The smoothed margin ``log(1/loss)/||theta||^L`` and the normalized margin along an accurate flow
    (:func:`lib.margins.accurate_flow`, RK4 at the steps ``h`` and ``h/2``) for FC linear nets of depth 2
    and 3 on the data of :func:`fc_linear`: ``inits`` Gaussian initialisations (``N(0, 1/width)``) and one
    run started at the hard-margin optimum (the balanced rank-one net along the SVM, scaled to
    ``min q = q0``), every run until ``||theta||^L`` reaches ``scale_max``.

    Per model (``table``): the largest relative fall of each margin after the loss drops below 1
    (:func:`lib.margins.largest_fall`) at the step ``h/2``, and the step-halving estimate of the
    smoothed margin's error (:func:`lib.margins.halving_gap`, relative to its final value)."""
    Smoothed(n=n, d=d, width=width, inits=inits, h=h, scale_max=scale_max, max_steps=max_steps, q0=q0)
    gen = torch.Generator(device=device).manual_seed(seed * 1_000_003 + 51)
    X, y = separable_data(n, d, seed)
    beta, _ = M.svm_l2(X, y)
    Xt, yt = _t(X, device), _t(y, device)
    rows, curves = [], {}
    for L in (2, 3):
        fam = H.fc(d, width, L)
        name = f"FC linear depth {L}"
        th_svm = _t(_balanced_fc(beta, width, L)[None], device)
        th_svm = th_svm * (q0 / H.margins(fam, th_svm, Xt, yt).min()) ** (1.0 / L)
        th0 = torch.cat([torch.randn(inits, fam.size, generator=gen, dtype=torch.float64, device=device) / np.sqrt(width),
                         th_svm])
        coarse = M.accurate_flow(fam, th0, Xt, yt, h=h, scale_max=scale_max, max_steps=max_steps)
        fine = M.accurate_flow(fam, th0, Xt, yt, h=h / 2, scale_max=scale_max, max_steps=2 * max_steps)
        fall_s = M.largest_fall(fine.smoothed, fine.log_loss)
        fall_g = M.largest_fall(fine.gamma, fine.log_loss)
        last = np.abs(fine.smoothed[-1])
        cs = np.where(coarse.norm**L < scale_max, coarse.smoothed, np.nan)  # compare while both runs move
        fs = np.where(fine.norm**L < scale_max, fine.smoothed, np.nan)
        gap = max(M.halving_gap(cs[:, j], fs[:, j]) / last[j] for j in range(len(th0)))
        if coarse.norm[-1].min() ** L < scale_max or fine.norm[-1].min() ** L < scale_max:
            raise ParameterError(f"smoothed: some runs did not reach scale_max={scale_max:g} within max_steps;"
                                 " increase max_steps")
        sep = np.isfinite(fall_s)
        rows.append({"model": name, "runs": len(th0), "loss < 1": int(sep.sum()),
                     "max fall, smoothed": float(np.nanmax(fall_s)), "max fall, hard margin": float(np.nanmax(fall_g)),
                     "fall, hard margin, SVM start": float(fall_g[-1]), "halving estimate, smoothed": gap,
                     "steps (h/2)": len(fine.steps) - 1})
        moving = fine.norm[:-1] ** L < scale_max
        s = np.vstack([np.zeros(len(th0)), np.cumsum(np.where(moving, (h / 2) / fine.norm[:-1] ** L, 0.0), 0)])
        below = np.flatnonzero(np.isfinite(fall_s[:-1]))
        keep = [int(below[0]) if len(below) else 0, len(th0) - 1]  # a Gaussian run whose loss drops below 1; the SVM start
        curves[name] = {"s": s[:, keep], "smoothed": np.where(fine.log_loss < 0, fine.smoothed, np.nan)[:, keep],
                        "gamma": np.where(fine.log_loss < 0, fine.gamma, np.nan)[:, keep], "labels": ["Gaussian init", "SVM start"]}
    return {"table": pd.DataFrame(rows).set_index("model"), "curves": curves, "h": h}


# -- measurements the chapter's claims make -------------------------------------------------------------
def fc_table(fc: dict[str, Any]) -> pd.DataFrame:
    """Per depth: inits, median gamma, target ``gamma_SVM / L^{L/2}``, and the largest relative error,
    ``1 - cos``, rank-one defect and KKT residual over the inits, at the limit and before annealing."""
    runs = fc["runs"].assign(rel_error=lambda r: (r.gamma / r.target - 1).abs(),
                             rel_error_unannealed=lambda r: (r.gamma_unannealed / r.target - 1).abs())
    return runs.groupby("depth").agg(
        inits=("run", "size"), median_gamma=("gamma", "median"), target=("target", "first"),
        max_rel_error=("rel_error", "max"), max_1_minus_cos=("align", "max"),
        max_rank1_defect=("rank1_defect", "max"), max_kkt_residual=("kkt_residual", "max"),
        unannealed_rel_error=("rel_error_unannealed", "max"), unannealed_kkt=("kkt_unannealed", "max"))


def fc_checks(fc: dict[str, Any]) -> dict[str, float]:
    """The numbers the FC claims compare: the largest relative gamma error, ``1 - cos``, rank-one defect
    and KKT residual over all runs at the limit and (``*_unannealed``) at the end of the constant-step
    phase (the rank-one defect at step ``early``, ``rank1_early``); the KKT residual at the teacher point; the largest ``|ratio - 1|`` of the per-layer QPs at
    the limits and at the teacher point."""
    r, pl = fc["runs"], fc["per_layer"]
    return {
        "gamma_error": float((r.gamma / r.target - 1).abs().max()),
        "gamma_error_unannealed": float((r.gamma_unannealed / r.target - 1).abs().max()),
        "align": float(r["align"].max()), "align_unannealed": float(r["align_unannealed"].max()),
        "rank1": float(r["rank1_defect"].max()), "rank1_early": float(r["rank1_early"].max()),
        "kkt": float(r["kkt_residual"].max()), "kkt_unannealed": float(r["kkt_unannealed"].max()),
        "kkt_teacher": float(fc["teacher_point"]["kkt_residual"].min()),
        "layer": float((pl["ratio"] - 1).abs().max()),
        "layer_teacher": float((pl["ratio_teacher_point"] - 1).abs().max()),
    }


def diag2_table(dg: dict[str, Any], rows: int = 6) -> pd.DataFrame:
    """The first ``rows`` depth-2 limits on ``x = (1, 2)``: gamma, multiplier, dual vector, KKT residual."""
    d2 = dg["d2"]
    return pd.DataFrame({"init": ["special"] + [f"Gaussian {i}" for i in range(1, len(d2["final_gamma"]))],
                         "gamma": d2["final_gamma"], "lambda": d2["lam"], "z_1": d2["z"][:, 0], "z_2": d2["z"][:, 1],
                         "kkt_residual": d2["residual"]}).head(rows)


def dense_table(dg: dict[str, Any], rows: int = 6) -> pd.DataFrame:
    """The sparse KKT point and the first generic depth-2 limits on ``x_1 = (1, 2), x_2 = (2, 1)``."""
    dd = dg["d2dense"]
    sp = dd["sparse"]
    return pd.DataFrame({
        "point": ["sparse u = v = (0, 1)"] + [f"Gaussian {i}" for i in range(1, len(dd["final_gamma"]) + 1)],
        "gamma": np.r_[sp["gamma"], dd["final_gamma"]], "z_1": np.r_[sp["z"][0], dd["z"][:, 0]],
        "z_2": np.r_[sp["z"][1], dd["z"][:, 1]], "smallest weight / norm": np.r_[0.0, dd["min_weight"]],
        "kkt_residual": np.r_[sp["residual"], dd["residual"]]}).head(rows)


def diag3_table(dg: dict[str, Any], rows: int = 6) -> pd.DataFrame:
    """The first depth-3 limits on ``x = (1, 1)``: gamma, predictor, smallest weight, KKT residual."""
    d3 = dg["d3"]
    return pd.DataFrame({
        "init": ["symmetric", "u_3 = (0.51, 0.5)"] + [f"Gaussian {i}" for i in range(1, len(d3["final_gamma"]) - 1)],
        "gamma": d3["final_gamma"], "beta_1": d3["beta"][:, 0], "beta_2": d3["beta"][:, 1],
        "smallest weight / norm": d3["min_weight"], "kkt_residual": d3["residual"]}).head(rows)


def relu_table(rl: dict[str, Any]) -> pd.DataFrame:
    """The two trained depth-2 ReLU limits: gamma, multipliers, ``max h``, KKT residual."""
    return pd.DataFrame({"run": ["B dead at init", "one neuron per point"], "gamma": rl["final_gamma"],
                         "lambda_1": rl["lam"][:, 0], "lambda_2": rl["lam"][:, 1], "max_u h(u)": rl["hmax"],
                         "kkt_residual": rl["residual"]})


def per_layer_table(fc: dict[str, Any], dg: dict[str, Any], rl: dict[str, Any]) -> pd.DataFrame:
    """Per-layer QP ratios (optimal layer norm / current) at the FC limits, the diagonal limits and the
    hand-built ReLU split point (layer 1, closed form)."""
    rows = [{"point": f"FC linear depth {r.depth}", "layer": r.layer, "QP optimum / current": r.ratio}
            for r in fc["per_layer"].itertuples()]
    rows += [{"point": name, "layer": i + 1, "QP optimum / current": v}
             for name, key in [("diagonal depth 2, special limit", "d2"), ("diagonal depth 3, symmetric limit", "d3")]
             for i, v in enumerate(dg[key]["per_layer"])]
    rows += [{"point": "ReLU split point (layer 1, explicit)", "layer": 1, "QP optimum / current": rl["layer1_ratio"]}]
    return pd.DataFrame(rows)


def fc_reported(fc: dict[str, Any]) -> dict[str, float]:
    """The FC margins reported with the claim: the median limit gamma and the target of each depth, and
    ``gamma_SVM``."""
    out = {}
    for L, g in fc["runs"].groupby("depth"):
        out[f"gamma depth {L}"] = float(g["gamma"].median())
        out[f"target depth {L}"] = float(g["target"].iloc[0])
    return out | {"gamma_SVM": float(fc["gamma_svm"])}


def non_global_fraction(gamma: np.ndarray, target: float | np.ndarray, tol: float = CLASS_TOL) -> float:
    """Fraction of runs whose limit's gamma is not within ``tol`` (relative) of the global optimum."""
    gamma = np.asarray(gamma, dtype=float)
    return float((np.abs(gamma / target - 1) > tol).mean())


def loglog_slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of ``log y`` against ``log x`` (NaN if any ``y <= 0``)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if (y <= 0).any() or (x <= 0).any():
        return float("nan")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def dead_coordinate_dual(theta: np.ndarray, z: np.ndarray, depth: int, tol: float = 1e-6) -> np.ndarray:
    """Per run of a diagonal net (``theta``: ``[B, depth * d]``), the largest ``|z_j|`` over the coordinates
    whose weights all vanish (below ``tol * ||theta||``): ``> 1`` certifies a depth-2 KKT point is not a
    local optimum (:func:`lib.margins.l1_dual_vector`); ``-inf`` for a run without such a coordinate."""
    theta = np.asarray(theta, dtype=float)
    B = theta.shape[0]
    w = np.abs(theta).reshape(B, depth, -1).max(1)  # [B, d]
    dead = w < tol * np.linalg.norm(theta, axis=1, keepdims=True)
    return np.where(dead, np.abs(z), -np.inf).max(1)


def second_order(local: pd.DataFrame) -> pd.DataFrame:
    """Per point and centre (``centre``: the index of the centre, or the run it is the limit of) of a
    local-search table: ``max_r gain / r^2``
    (:func:`lib.margins.second_order_gain`) and the fitted exponent of the best gain against ``r``."""
    rows = []
    for (point, c), g in local.groupby(["point", "centre"], sort=False):
        rows.append({"point": point, "centre": c,
                     "gain / r^2": float(M.second_order_gain(g["radius"].to_numpy(), g["gain"].to_numpy())),
                     "exponent": loglog_slope(g["radius"], g["gain"])})
    return pd.DataFrame(rows)


def local_verdicts(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """The local-search verdicts of the chapter, one row per kind of point: number of centres, smallest
    and largest ``gain / r^2``, largest ``|exponent - 2|``."""
    so = pd.concat([second_order(t) for t in tables], ignore_index=True)
    return so.groupby("point", sort=False).agg(
        centres=("centre", "size"), min_gain_over_r2=("gain / r^2", "min"), max_gain_over_r2=("gain / r^2", "max"),
        max_exponent_error=("exponent", lambda e: float(np.abs(e - 2).max())))


def escape_fit(df: pd.DataFrame, column: str = "steps") -> pd.DataFrame:
    """Least-squares line ``column = a + b log(1/e)`` per depth, with R^2 (``df``: the escape table)."""
    if df[column].isna().any():
        raise ParameterError("invalid max_steps: some perturbed runs did not escape within max_steps; increase it")
    rows = []
    for L, g in df.groupby("depth"):
        b, a = np.polyfit(g["log_inv_eps"], g[column], 1)
        pred = a + b * g["log_inv_eps"]
        r2 = 1 - ((g[column] - pred) ** 2).sum() / ((g[column] - g[column].mean()) ** 2).sum()
        rows.append({"depth": L, "slope": b, "intercept": a, "R2": r2})
    return pd.DataFrame(rows).set_index("depth")


def flow_time_exponent(df: pd.DataFrame, depth: int, clock: str = "log_flow_time") -> float:
    """The exponent ``p`` of ``log t_esc ~ C e^{-p}``: the least-squares slope of ``log(log t_esc)``
    against ``log(1/e)`` for one depth. ``clock="clock_s"`` makes the same fit with the trainer's clock
    ``s`` in place of ``t`` (``log(log s)``), the control."""
    g = df[df["depth"] == depth]
    v = g[clock] if clock == "log_flow_time" else np.log(g[clock])
    if (v <= 0).any() or v.isna().any():
        return float("nan")
    return float(np.polyfit(g["log_inv_eps"], np.log(v), 1)[0])


def diagonal_checks(dg: dict[str, Any]) -> dict[str, float]:
    """The numbers the diagonal claims compare (from :func:`diagonal`): limits' gamma, KKT residuals, dual
    certificates, exponents of the explicit curves, per-layer ratios, and their controls."""
    d2, dd, d3 = dg["d2"], dg["d2dense"], dg["d3"]
    c2, c3 = dg["curve_d2"], dg["curve_d3"]
    return {
        "d2_special_gamma": float(d2["final_gamma"][0]), "d2_perturbed_gamma": d2["perturbed_gamma"],
        "d2_generic_error": float(np.abs(d2["final_gamma"][1:] - d2["gamma_l1"] / 2).max()),
        "d2_special_error": float(abs(d2["final_gamma"][0] - d2["gamma_l1"] / 2)),
        "d2_kkt": float(d2["residual"][0]), "d2_kkt_early": d2["early_residual"], "d2_lambda": float(d2["lam"][0]),
        "d2_dead_dual": float(d2["dead_dual"][0]), "d2_dead_dual_generic": float(d2["dead_dual"][1:].max()),
        "d2_curve_exponent": loglog_slope(c2["distance"][:8], c2["gain"][:8]),
        "d2_gain_at_1e-2": float(c2["gain"].iloc[8]),
        "sparse_kkt": dd["sparse"]["residual"], "sparse_z1": float(abs(dd["sparse"]["z"][0])),
        "sparse_z2": float(dd["sparse"]["z"][1]), "sparse_gamma": dd["sparse"]["gamma"],
        "dense_error": float(np.abs(dd["final_gamma"] - dd["gamma_l1"] / 2).max()),
        "dense_error_zero_weight": float(abs(dd["zero_weight_gamma"] - dd["gamma_l1"] / 2)),
        "dense_min_weight": float(dd["min_weight"].min()), "dense_min_weight_zero_weight": dd["zero_weight_min_weight"],
        "dense_max_z": float(np.abs(dd["z"]).max()), "dense_min_z": float(np.abs(dd["z"]).min()),
        "d3_symmetric_gamma": float(d3["final_gamma"][0]), "d3_asymmetric_gamma": float(d3["final_gamma"][1]),
        "d3_kkt": float(d3["residual"][0]), "d3_kkt_face": d3["face_point"]["residual"],
        "d3_generic_error": float(np.abs(d3["final_gamma"][1:] - 3**-1.5).max()),
        "d3_symmetric_error": float(abs(d3["final_gamma"][0] - 3**-1.5)),
        "d3_min_weight": float(d3["min_weight"][0]), "d3_t": float((d3["beta"][0, 0] - d3["beta"][0, 1]) / 2),
        "d3_curve_exponent": loglog_slope(c3["t"][:6], c3["gain"][:6]),
        "layer": float(np.abs(np.array(d2["per_layer"] + d3["per_layer"]) - 1).max()),
        "layer_face": float(np.abs(np.array(d3["face_point"]["per_layer"]) - 1).max()),
    }


def relu_checks(rl: dict[str, Any]) -> dict[str, float]:
    """The numbers the depth-2 ReLU claims compare (from :func:`relu_width2`)."""
    cr = rl["curve"]
    return {
        "dead_gamma": float(rl["final_gamma"][0]), "optimum_gamma": float(rl["final_gamma"][1]),
        "dead_kkt": float(rl["residual"][0]), "dead_kkt_early": rl["early_residual"],
        "dead_hmax": float(rl["hmax"][0]), "optimum_hmax": float(rl["hmax"][1]),
        "curve_exponent": loglog_slope(cr["distance"][:8], cr["gain"][:8]), "gain_at_1e-2": float(cr["gain"].iloc[8]),
        "split_gap": rl["gamma_opt"] - rl["gamma_points"]["split"], "split_gamma": rl["gamma_points"]["split"],
        "split_kkt": float(rl["points_kkt_residual"][1]), "layer1_ratio": float(rl["layer1_ratio"]),
    }


def open_set_checks(res: dict[str, Any]) -> dict[str, float]:
    """The numbers the open-set claims compare (from :func:`open_sets`): the fraction of each set ending
    in the split and zero-neuron classes, and the largest KKT residual of the split limits with the
    soft and the control cap."""
    runs = res["runs"]
    soft = runs["cap"] == runs["cap"].min()

    def frac(name: str, cls: str, sel=soft) -> float:
        g = runs[sel & (runs["set"] == name)]
        return float((g["limit"] == cls).mean())

    split_soft = runs[soft & (runs["limit"] == "bad, split")]
    split_ctrl = runs[~soft & (runs["limit"] == "bad, split")]
    return {
        "split_set_split": frac("split set", "bad, split"), "one_per_point_split": frac("one per point", "bad, split"),
        "dead_set_zero": frac("dead set", "bad, zero neuron"), "split_set_zero": frac("split set", "bad, zero neuron"),
        "one_per_point_global": frac("one per point", "global optimum"),
        "split_kkt": float(split_soft["kkt_residual"].max()), "split_kkt_control_cap": float(split_ctrl["kkt_residual"].min()),
        "n": int(res["n"]),
    }


def binomial_lower_tail(n: int, p: float, k: float) -> float:
    """Hoeffding's bound on ``P(Bin(n, p) <= k)`` for ``k < n p``: ``exp(-2 n (p - k/n)^2)``: the chance that
    a fraction criterion ``>= k/n`` fails although the true rate is ``p``."""
    if k >= n * p:
        return 1.0
    return float(math.exp(-2 * n * (p - k / n) ** 2))


def local_checks(verdicts: pd.DataFrame) -> dict[str, float]:
    """The numbers the local-search claims compare, from :func:`local_verdicts`: the smallest
    ``gain / r^2`` over the non-local KKT limits :data:`NONLOCAL_POINTS` (control: over the split limits),
    the largest ``|exponent - 2|`` over :data:`EXPONENT_POINTS` (control: the not-KKT iterate), the
    largest ``gain / r^2`` over the split limits, all parameters (control: the zero-neuron limits) and
    layer 1 only (control: the split limits of the control cap, layer 1 only)."""
    v = verdicts
    return {
        "nonlocal_min": float(v.loc[list(NONLOCAL_POINTS), "min_gain_over_r2"].min()),
        "nonlocal_min_split": float(v.loc[SPLIT, "min_gain_over_r2"]),
        "exponent_error": float(v.loc[list(EXPONENT_POINTS), "max_exponent_error"].max()),
        "exponent_error_not_kkt": float(v.loc[NOT_KKT, "max_exponent_error"]),
        "split_max": float(v.loc[SPLIT, "max_gain_over_r2"]), "split_max_zero": float(v.loc[ZERO, "max_gain_over_r2"]),
        "split_layer1_max": float(v.loc[SPLIT + LAYER1, "max_gain_over_r2"]),
        "split_layer1_control": float(v.loc[SPLIT_CONTROL + LAYER1, "max_gain_over_r2"]),
        "split_control": float(v.loc[SPLIT_CONTROL, "max_gain_over_r2"]),
    }


def nonlocal_coefficients(verdicts: pd.DataFrame) -> dict[str, float]:
    """The smallest ``gain / r^2`` at each kind of non-local KKT limit (reported with the claim)."""
    return {p: float(verdicts.loc[p, "min_gain_over_r2"]) for p in NONLOCAL_POINTS}


def random_checks(rsum: pd.DataFrame, fc: dict[str, Any]) -> dict[str, float]:
    """The random-initialisation claim's numbers: ``P(bad | separated)`` at width 2 and, as the control,
    the same fraction for the FC linear runs of :func:`fc_linear` (limits not within :data:`CLASS_TOL` of
    the global optimum)."""
    r = fc["runs"]
    return {"bad_fraction": float(rsum.loc[2, "P(bad | separated)"]),
            "bad_events": int(rsum.loc[2, "bad (gamma=delta/2)"]),
            "fc_non_global": non_global_fraction(r["gamma"], r["target"])}


def random_reported(rsum: pd.DataFrame) -> dict[str, float]:
    """The counts of :func:`random_summary` reported with the random-initialisation claim."""
    cols = ["inits", "separated", "global", "bad (gamma=delta/2)", "bad, with zero neuron", "bad, split",
            "same class uncapped"]
    return {f"width {w} {c}": float(rsum.loc[w, c]) for w in rsum.index for c in cols}


def escape_checks(esc: dict[str, Any]) -> dict[str, float]:
    """The escape claims' numbers: R^2 of the linear fits of the escape step (and, control, of
    ``log t``) against ``log(1/e)``; the depth-2 slope against the discrete prediction (and, control,
    against the continuous-time ``1/eta``); the flow-time exponent at depth 2 (and, control, the same
    fit on the trainer's clock)."""
    t = esc["table"]
    fit, fit_t = escape_fit(t), escape_fit(t, "log_flow_time")
    slope = float(fit.loc[2, "slope"])
    return {
        "r2": float(fit["R2"].min()), "r2_flow_time": float(fit_t["R2"].max()),
        "slope": slope, "slope_error": abs(slope / esc["slope_pred_depth2"] - 1),
        "slope_error_continuous": abs(slope / esc["slope_flow_limit_depth2"] - 1),
        "flow_exponent": flow_time_exponent(t, 2), "flow_exponent_clock": flow_time_exponent(t, 2, "clock_s"),
        "flow_exponent_depth3": flow_time_exponent(t, 3),
        **{f"slope depth {L}": float(fit.loc[L, "slope"]) for L in fit.index},
    }


def smoothed_checks(sm: dict[str, Any]) -> dict[str, float]:
    """The smoothed-margin claim's numbers: the largest relative fall of the smoothed margin over every
    model and run (control: of the hard margin), and the largest step-halving estimate."""
    t = sm["table"]
    return {"fall_smoothed": float(t["max fall, smoothed"].max()), "fall_hard": float(t["max fall, hard margin"].max()),
            "halving": float(t["halving estimate, smoothed"].max()), "runs_below_1": int(t["loss < 1"].sum())}


# -- the summary table --------------------------------------------------------------------------------
SUMMARY_ROWS: list[tuple[str, list[str]]] = [
    ("FC linear", ["ch02-fc-gamma", "ch02-fc-align", "ch02-fc-rank1", "ch02-fc-kkt"]),
    ("diagonal, depth 2", [
        "ch02-diag2-special-gamma", "ch02-diag2-kkt", "ch02-diag2-certificate", "ch02-diag2-curve-exponent",
        "ch02-diag2-generic-gamma", "ch02-local-nonlocal", "ch02-local-exponent"]),
    ("diagonal, depth 2, non-zero weights", [
        "ch02-diag2-sparse-kkt", "ch02-diag2-sparse-certificate", "ch02-diag2-dense-global", "ch02-diag2-dense-weights"]),
    ("diagonal, depth 3", [
        "ch02-diag3-symmetric-gamma", "ch02-diag3-kkt", "ch02-diag3-asymmetric-gamma", "ch02-diag3-curve-exponent",
        "ch02-local-nonlocal", "ch02-local-exponent"]),
    ("depth-2 ReLU, dead neuron", [
        "ch02-relu-dead-gamma", "ch02-relu-dead-kkt", "ch02-relu-certificate", "ch02-relu-curve-exponent",
        "ch02-local-nonlocal", "ch02-local-exponent", "ch02-open-dead", "ch02-random-bad-fraction"]),
    ("depth-2 ReLU, split neurons", [
        "ch02-open-split", "ch02-split-limits-kkt", "ch02-local-split", "ch02-split-not-global", "ch02-relu-optimum",
        "ch02-relu-optimum-certificate"]),
    ("per layer", ["ch02-layer-diag", "ch02-layer-fc", "ch02-layer-relu-local", "ch02-layer-relu-not-global"]),
    ("dynamics", ["ch02-escape-linear", "ch02-escape-slope", "ch02-escape-flow-time", "ch02-smoothed-monotone"]),
]
"""Rows of the chapter's summary table: architecture (as in the chapter's table) and the ids of the
claims that test it."""


def summary_table(claims: list, rows: list[tuple[str, list[str]]] = SUMMARY_ROWS) -> pd.DataFrame:
    """The chapter's summary table built from its registered claims (``ctx.claims.claims``): per row, the
    evidence claims that test it and how many passed, and apart from them the identities (algebraic or
    structural checks of the construction, never counted as evidence; a failed one stops the chapter). ``check`` is a check mark when
    every evidence claim of the row passed (and there is at least one), ``identities only`` when the row
    has no evidence claim. A claim id that was not registered raises ``KeyError``."""
    by_id = {c.id: c for c in claims}
    out = []
    for arch, ids in rows:
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise KeyError(f"summary row {arch!r} cites claims that were not registered: {missing}")
        ev = [i for i in ids if by_id[i].kind == "evidence"]
        ident = [i for i in ids if by_id[i].kind != "evidence"]
        n_pass = sum(by_id[i].passed for i in ev)
        check = "identities only" if not ev else "✓" if n_pass == len(ev) else "✗"
        out.append({"architecture": arch, "evidence": ", ".join(i.removeprefix("ch02-") for i in ev),
                    "passed": f"{n_pass}/{len(ev)}", "identities": ", ".join(i.removeprefix("ch02-") for i in ident),
                    "check": check})
    return pd.DataFrame(out).set_index("architecture")


def claims_table(claims: list) -> pd.DataFrame:
    """Every registered claim: kind, measured value, criterion, control value, passed."""
    return pd.DataFrame([{"claim": c.id, "kind": c.kind, "measured": c.measured, "criterion": c.criterion(),
                          "control": c.control.measured if c.control is not None else np.nan,
                          "passed": "✓" if c.passed else "✗"} for c in claims]).set_index("claim")


# -- everything ---------------------------------------------------------------------------------------
STUDIES = (fc_linear, diagonal, relu_width2, open_sets, random_relu, escape, smoothed)


def run_all(ctx) -> dict[str, Any]:
    """Run every study of the chapter through ``ctx.study`` (its cache) with the profile's parameters."""
    P = params(ctx.profile)
    return {fn.__name__: ctx.study(fn, getattr(P, fn.__name__)) for fn in STUDIES}


def bench_workload(runs: int, device) -> Workload:
    """One trainer step of ``runs`` width-8 ReLU nets on the two-point data (the random-init study).

    ``batched_step``: one tensor program over ``[runs, P]``; ``loop_step``: each run in turn with NumPy
    (faster than per-run torch for these tiny problems). Overhead-bound, so no flop count.
    """
    check_positive("runs", runs, integer=True)
    dev = torch.device(device)
    X, y = relu_data(DELTA)
    Xt, yt = _t(X, dev), _t(y, dev)
    fam = H.relu(2, 8)
    gen = torch.Generator(device=dev).manual_seed(0)
    state = {"theta": torch.randn(runs, fam.size, generator=gen, dtype=torch.float64, device=dev)}
    thetas = [state["theta"][r].cpu().numpy().copy() for r in range(runs)]
    eta = 0.01

    def batched_step() -> None:  # exactly the step of lib.margins.train (degree 2, no norm cap)
        th = state["theta"]
        q, pullback = fam.margins_and_pullback(th, Xt, yt)
        state["theta"] = M.rescaled_step(th, q, th.norm(dim=1), pullback, yt, eta, fam.degree, None)

    def loop_step() -> None:
        for r in range(runs):
            th = thetas[r]
            w, v = th[:16].reshape(8, 2), th[16:]
            pre = w @ X.T  # [m, n]
            q = y * (v @ np.maximum(pre, 0.0))
            s = np.exp(-(q - q.min()))
            s /= s.sum()
            c = s * y
            gv = np.maximum(pre, 0.0) @ c
            gw = (v[:, None] * (pre > 0) * c[None, :]) @ X
            thetas[r] = th + eta * np.concatenate([gw.ravel(), gv])

    return Workload(name="ch02 time-rescaled step, ReLU width 8", runs=runs, device=str(dev),
                    batched_step=batched_step, loop_step=loop_step)

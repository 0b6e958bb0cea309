"""Unit tests of the core: chapter parameters, claims, figures, the study cache, the engine, the
batched optimisers and the shallow networks."""

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lib import checks, engine, optim, shallow
from lib.book import cache, chapter, claims, figures, paths

# -- chapter parameters ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(profile="medium"), "invalid profile='medium': allowed values are 'fast', 'full'"),
        (dict(profile=None), "invalid profile=None"),
        (dict(device="gpu"), "invalid device='gpu': allowed values are 'auto', 'cpu', 'cuda'"),
        (dict(seed=-1), "invalid seed=-1"),
        (dict(seed=1.5), "invalid seed=1.5"),
    ],
)
def test_start_rejects_bad_parameters(tmp_build, kw, match):
    args = dict(profile="fast", device="cpu", seed=0) | kw
    with pytest.raises(checks.ParameterError, match=match.replace("(", r"\(").replace(")", r"\)")):
        chapter.start("99-test", **args)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_cuda_without_gpu_is_an_error_not_a_fallback(tmp_build):
    with pytest.raises(checks.ParameterError, match="no CUDA GPU"):
        chapter.start("99-test", device="cuda")


def test_start_resolves_auto_and_seeds(tmp_build):
    ctx = chapter.start("99-test", "fast", "auto", 3)
    assert ctx.device.type in {"cpu", "cuda"}
    a = ctx.rng(1).normal(size=3)
    b = chapter.start("99-test", "fast", "auto", 3).rng(1).normal(size=3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, ctx.rng(2).normal(size=3))


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "3", True])
def test_check_positive(bad):
    with pytest.raises(checks.ParameterError, match="invalid width"):
        checks.check_positive("width", bad, integer=not isinstance(bad, float))


def test_check_positive_accepts():
    assert checks.check_positive("lr", 0.1) == 0.1
    assert checks.check_positive("width", 3, integer=True) == 3
    assert checks.check_positive("wd", 0.0, allow_zero=True) == 0.0


# -- claims ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kw, good, bad", [
    (dict(), (0.5, 3.0), (0.0,)),                                   # (0, inf): 0 is out
    (dict(closed=(True, False)), (0.0, 3.0), (-1e-12,)),             # [0, inf): 0 is in
    (dict(hi=1.0), (0.5,), (1.0,)),                                   # (0, 1): 1 is out
    (dict(hi=1.0, closed=(False, True)), (1.0,), (1.0 + 1e-12,)),    # (0, 1]: 1 is in
    (dict(lo=1, integer=True), (2, 3), (2.0,)),                      # integers > 1: a float is out
    (dict(lo=-math.inf), (-5.0, 0.0), (float("nan"),)),              # finite numbers only
    (dict(), (1.0,), ()),                                             # empty is out...
    (dict(allow_empty=True), (), ("1",)),                             # ...unless allowed; strings never
])
def test_check_numbers_interval_ends(kw, good, bad):
    assert checks.check_numbers("xs", list(good), **kw) == tuple(good)
    with pytest.raises(checks.ParameterError, match="invalid xs="):
        checks.check_numbers("xs", bad, **kw)


def test_check_fields_names_the_field():
    obj = type("P", (), {"a": 1.0, "b": 0, "c": 0})()
    checks.check_fields(obj, "a")
    checks.check_fields(obj, "c", integer=True, allow_zero=True)
    with pytest.raises(checks.ParameterError, match="invalid b=0"):
        checks.check_fields(obj, "a", "b")


def test_claims_pass_fail_and_json(tmp_build):
    reg = claims.ClaimRegistry("99-test", {"profile": "fast"})
    c = reg.check("a", "close", paper="k", where="w", source="paper", kind="identity", measured=1.0 + 1e-9, expected=1.0, tol=1e-8)
    assert c.passed and "|m - 1| <= 1e-08" == c.criterion()
    reg.check("b", "bounded", paper="k", where="w", source="paper", kind="identity", measured=np.float64(1.5), lower=1, upper=2,
              values={"x": np.float32(2.5)})
    with pytest.raises(claims.ClaimFailed, match="FAIL"):
        reg.check("c", "strict", paper="k", where="w", source="paper", kind="identity", measured=2.0, lower=1, upper=2, strict=True)
    data = json.loads((tmp_build / "claims" / "99-test.json").read_text())
    assert data["n_claims"] == 3 and data["n_passed"] == 2
    assert [c["passed"] for c in data["claims"]] == [True, True, False]
    assert data["claims"][1]["values"] == {"x": 2.5}
    assert all(isinstance(c["measured"], float) for c in data["claims"])


def test_claims_reject_misuse(tmp_build):
    reg = claims.ClaimRegistry("99-test", {})
    with pytest.raises(ValueError, match="tolerance"):
        reg.check("a", "s", paper="k", where="w", source="paper", kind="identity", measured=1, expected=1)
    with pytest.raises(ValueError, match="expected"):
        reg.check("a", "s", paper="k", where="w", source="paper", kind="identity", measured=1)
    reg.check("a", "s", paper="k", where="w", source="paper", kind="identity", measured=1, upper=2)
    with pytest.raises(ValueError, match="needs a control"):
        reg.check("ev", "s", paper="k", where="w", source="paper", measured=1, upper=2)
    with pytest.raises(ValueError, match="twice"):
        reg.check("a", "s", paper="k", where="w", source="paper", kind="identity", measured=1, upper=2)


def test_a_control_that_passes_fails_the_claim(tmp_build):
    """A negative control must fail the claim's criterion; if it passes too, the claim fails with a
    message naming the control, and the record says so."""
    reg = claims.ClaimRegistry("99-test", {})
    c = reg.check("rk4", "drift below 1e-8", paper="k", where="w", source="paper", measured=1e-12, upper=1e-8,
                  control=("Euler at the same step", 3e-5))
    assert c.passed and c.control.passed is False
    with pytest.raises(claims.ClaimFailed, match="cannot tell Euler at the same step apart"):
        reg.check("weak", "drift below 1", paper="k", where="w", source="paper", measured=1e-12, upper=1.0,
                  control=("Euler at the same step", 3e-5))
    data = json.loads((tmp_build / "claims" / "99-test.json").read_text())
    assert data["claims"][0]["control"] == {"description": "Euler at the same step", "measured": 3e-5, "passed": False}
    assert data["claims"][1]["control"]["passed"] is True and data["claims"][1]["passed"] is False
    assert data["n_evidence"] == 2 and data["n_controlled"] == 1


def test_identities_are_counted_apart(tmp_build):
    reg = claims.ClaimRegistry("99-test", {})
    reg.check("id", "an identity", paper="k", where="w", source="paper", measured=0.0, expected=0.0, tol=1e-12, kind="identity")
    reg.check("ev", "evidence", paper="k", where="w", source="paper", measured=1.0, upper=2.0, control=("wrong", 3.0))
    data = json.loads((tmp_build / "claims" / "99-test.json").read_text())
    assert (data["n_claims"], data["n_evidence"], data["n_controlled"], data["n_identity"]) == (2, 1, 1, 1)
    with pytest.raises(ValueError, match="kind"):
        reg.check("bad", "s", paper="k", where="w", source="paper", measured=1, upper=2, kind="proof")
    with pytest.raises(ValueError, match="control"):
        reg.check("bad2", "s", paper="k", where="w", source="paper", measured=1, upper=2, control=("", 3.0))


def test_claims_appendix_shows_controls_and_identities(tmp_build):
    from lib.book import site

    reg = claims.ClaimRegistry("99-test", {})
    reg.check("id", "an identity", paper="k", where="w", source="paper", measured=0.0, expected=0.0, tol=1e-12, kind="identity")
    reg.check("ev", "evidence", paper="k", where="w", source="paper", measured=1.0, upper=2.0, control=("the wrong norm", 3.0))
    md = site.claims_markdown([{"chapter": "99-test", "profile": "fast", "device_name": "cpu", "commit": "x"}],
                                {"99-test": reg.to_json()})
    assert "1 evidence claims, 1 of them with a negative control" in md and "1 identities" in md
    assert "the wrong norm: 3, fails, as it must" in md and 'id="claim-ev"' in md


def test_nan_never_passes(tmp_build):
    reg = claims.ClaimRegistry("99-test", {})
    with pytest.raises(claims.ClaimFailed):
        reg.check("nan", "s", paper="k", where="w", source="paper", kind="identity", measured=float("nan"), lower=-math.inf)
    data = json.loads((tmp_build / "claims" / "99-test.json").read_text())
    assert data["claims"][0]["measured"] == "nan"


@given(m=st.floats(-10, 10), e=st.floats(-10, 10), tol=st.floats(0, 5))
@settings(max_examples=50, deadline=None)
def test_claim_close_matches_definition(m, e, tol):
    c = claims.Claim("i", "s", "k", "w", measured=m, expected=e, tol=tol)
    assert c.evaluate() == (abs(m - e) <= tol)


# -- figures ----------------------------------------------------------------------------------


def test_figure_files_and_provenance(tmp_build):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    rec = figures.save(fig, "99-test", "line", caption="A line.", alt="A line.",
                       meta={"profile": "fast", "seed": 0, "commit": "abc"}, glue=False)
    out = tmp_build / "figures" / "99-test"
    assert {p.name for p in out.iterdir()} == {"line.png", "line.pdf", "line.csv", "line.json"}
    data = json.loads((out / "line.json").read_text())
    assert data["figure"] == "line" and data["profile"] == "fast" and "torch" in data["libraries"]
    assert data["files"]["png"]["sha256"] == rec["files"]["png"]["sha256"]


def test_figures_are_byte_reproducible(tmp_build):
    import matplotlib.pyplot as plt

    digests = []
    for _ in range(2):
        fig, ax = plt.subplots()
        ax.plot(np.linspace(0, 1, 50) ** 2)
        rec = figures.save(fig, "99-test", "sq", caption="c", alt="a", meta={}, glue=False)
        digests.append((rec["files"]["png"]["sha256"], rec["files"]["pdf"]["sha256"]))
    assert digests[0] == digests[1]


@pytest.mark.parametrize("bad", ["Fig1", "fig_1", "", "-x"])
def test_figure_ids_are_validated(bad):
    with pytest.raises(ValueError, match="figure id"):
        figures.validate_id(bad)


# -- cache ------------------------------------------------------------------------------------


def test_cache_hits_and_keys(tmp_build, monkeypatch):
    calls = []

    def fn():
        calls.append(1)
        return {"x": np.arange(3)}

    a = cache.cached("99-test", "s", fn, params={"n": 3}, device="cpu")
    b = cache.cached("99-test", "s", fn, params={"n": 3}, device="cpu")
    c = cache.cached("99-test", "s", fn, params={"n": 4}, device="cpu")
    d = cache.cached("99-test", "s", fn, params={"n": 3}, device="cuda")
    assert (a.hit, b.hit, c.hit, d.hit) == (False, True, False, False)
    assert len(calls) == 3 and np.array_equal(b.value["x"], np.arange(3))
    monkeypatch.setenv("IB_CACHE", "0")
    assert not cache.cached("99-test", "s", fn, params={"n": 3}, device="cpu").hit


def test_cache_leaves_nothing_when_interrupted(tmp_build):
    def boom():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.cached("99-test", "s", boom, params={}, device="cpu")
    assert not list((tmp_build / "cache").rglob("*.pkl")) if (tmp_build / "cache").exists() else True


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    p = tmp_path / "f.json"
    paths.atomic_write_json(p, {"a": 1})

    class Boom:
        pass

    with pytest.raises(TypeError):
        paths.atomic_write_json(p, {"a": Boom()})
    assert json.loads(p.read_text()) == {"a": 1}
    assert [f.name for f in tmp_path.iterdir()] == ["f.json"]


@dataclasses.dataclass(frozen=True)
class N:
    """The parameters of the toy studies below."""

    n: int


def test_chapter_study_goes_through_cache(tmp_build):
    ctx = chapter.start("99-test", "fast", "cpu", 5)

    def s(*, n, device, seed):
        return n * 10 + seed

    assert ctx.study(s, N(2)) == 25
    assert ctx.study(s, N(2)) == 25
    assert [r["cached"] for r in ctx.studies_run] == [False, True]
    assert [r["study"] for r in ctx.studies_run] == ["s", "s"]  # the cache name is the function's
    with pytest.raises(TypeError, match="dataclass"):
        ctx.study(s, {"n": 2})
    with pytest.raises(TypeError, match="named function"):
        ctx.study(lambda *, device, seed: 0)
    with pytest.raises(TypeError):
        ctx.study("s", s, N(2))  # the old form that named the study separately is gone


# -- engine -----------------------------------------------------------------------------------


def test_grid_and_tidy():
    g = engine.grid(seed=[0, 1, 2], lr=[0.1, 0.01])
    assert len(g) == 6 and list(g.columns) == ["seed", "lr"]
    assert g.iloc[1].to_dict() == {"seed": 0, "lr": 0.01}
    t = engine.tidy(g, loss=torch.arange(6.0), vec=np.ones((6, 2)))
    assert t["loss"].tolist() == list(range(6)) and len(t["vec"][0]) == 2
    with pytest.raises(ValueError, match="shape"):
        engine.tidy(g, bad=np.ones(5))


def test_shards_cover_everything():
    s = engine.shards(10, 4)
    assert [(x.start, x.stop) for x in s] == [(0, 4), (4, 8), (8, 10)]
    with pytest.raises(ValueError):
        engine.shards(10, 0)


def test_check_finite_names_runs_and_parameter():
    runs = engine.grid(lr=[0.1, 10.0])
    x = torch.tensor([[1.0, 2.0], [float("nan"), 1.0]])
    with pytest.raises(engine.DivergenceError, match=r"1 of 2 runs: \[\{'lr': 10.0\}\]. reduce the step size lr"):
        engine.check_finite(x, what="GD", hint="reduce the step size lr", runs=runs)
    engine.check_finite(torch.ones(3, 2), what="GD", hint="h")


# -- optimisers -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["gd", "momentum", "adam"])
def test_batched_optimizer_equals_torch_per_run(method):
    torch.manual_seed(0)
    target = torch.randn(3, 4, dtype=torch.float64)
    lrs = torch.tensor([0.1, 0.03, 0.01], dtype=torch.float64)
    wd = 0.05
    x0 = torch.randn(3, 4, dtype=torch.float64)
    x = x0.clone()
    opt = optim.BatchedOptimizer([x], method, lr=lrs, wd=wd, momentum=0.9)
    for _ in range(20):
        opt.step([2 * (x - target) * torch.arange(1, 5)])
    for r in range(3):
        p = x0[r].clone().requires_grad_(True)
        if method == "adam":
            o = torch.optim.Adam([p], lr=lrs[r].item(), weight_decay=wd)
        else:
            o = torch.optim.SGD([p], lr=lrs[r].item(), weight_decay=wd,
                                momentum=0.9 if method == "momentum" else 0.0)
        for _ in range(20):
            o.zero_grad()
            ((p - target[r]) ** 2 * torch.arange(1, 5)).sum().backward()
            o.step()
        assert torch.allclose(x[r], p.detach(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kw, match", [(dict(method="sgd"), "method"), (dict(lr=0.0), "lr"),
                                       (dict(lr=float("nan")), "lr"), (dict(wd=-1.0), "wd")])
def test_optimizer_validation(kw, match):
    with pytest.raises(ValueError, match=match):
        optim.BatchedOptimizer([torch.zeros(2, 2)], **kw)


# -- shallow networks -------------------------------------------------------------------------


def test_shallow_forward_matches_explicit_sum():
    g = torch.Generator().manual_seed(1)
    net = shallow.init(2, 4, 3, skip=True, generator=g)
    net.v += 0.5
    net.c += 0.25
    x = torch.randn(5, 3, dtype=torch.float64, generator=g)
    out = shallow.forward(net, x)
    for r in range(2):
        ref = (net.a[r] * torch.relu(x @ net.w[r].T + net.b[r])).sum(1) + x @ net.v[r] + net.c[r]
        assert torch.allclose(out[r], ref)
    xb = x.expand(2, 5, 3)
    assert torch.allclose(shallow.forward(net, xb), out)


def test_shallow_penalty_and_balance():
    net = shallow.init(1, 3, 1)
    with torch.no_grad():
        net.a.copy_(torch.tensor([[3.0, -1.0, 0.5]]))
        net.w.copy_(torch.tensor([[[4.0], [1.0], [0.0]]]))
        net.b.copy_(torch.tensor([[0.0, 0.0, 0.5]]))
    assert torch.allclose(shallow.variation_norm(net), torch.tensor([12.0 + 1.0 + 0.25], dtype=torch.float64))
    assert torch.allclose(shallow.penalty(net, include_bias=False), torch.tensor([0.5 * (9 + 1 + 0.25 + 16 + 1)], dtype=torch.float64))
    kinks, jumps = shallow.kinks_1d(net)[0]
    assert kinks.tolist() == [0.0, 0.0] and jumps.tolist() == [12.0, -1.0]


def test_shallow_widths_mask():
    net = shallow.init(3, 6, 1, widths=torch.tensor([6, 2, 1]))
    assert (net.a[1, 2:] == 0).all() and (net.a[2, 1:] == 0).all() and (net.a[0] != 0).all()
    with pytest.raises(ValueError, match="widths"):
        shallow.init(2, 4, widths=torch.tensor([5, 1]))


def test_tidy_table_is_dataframe():
    assert isinstance(engine.grid(a=[1]), pd.DataFrame)


@pytest.mark.skipif(torch.cuda.is_available(), reason="replay is for machines without a GPU")
def test_gpu_results_replay_on_a_cpu_machine(tmp_build):
    """Results computed on a GPU machine (here: planted in the cache) render where there is no GPU."""

    def s(*, n, device, seed):
        return {"value": n, "device": str(device)}

    params = {"n": 2, "seed": 0, "profile": "full"}
    cache.cached("99-test", "s", lambda: {"value": 2, "device": "cuda:0"}, params=params, device="cuda",
                 meta={"profile": "full", "device_name": "cuda (NVIDIA H100)"})
    ctx = chapter.start("99-test", "full", "cuda", 0)
    assert ctx.replay and ctx.device.type == "cpu" and ctx.study_device == "cuda"
    assert ctx.study(s, N(2)) == {"value": 2, "device": "cuda:0"}
    with pytest.raises(cache.CacheMiss, match="--device cuda"):
        ctx.study(s, N(3))
    data = json.loads((tmp_build / "claims" / "99-test.json").read_text())
    assert data["studies"][0]["device_name"] == "cuda (NVIDIA H100)"
    # without cached GPU results, asking for cuda stays an error
    with pytest.raises(checks.ParameterError, match="no CUDA GPU"):
        chapter.start("98-other", "full", "cuda", 0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="replay is for machines without a GPU")
def test_a_study_skipped_on_the_gpu_machine_is_computed_where_the_book_is_built(tmp_build):
    """`lib study --device cuda` on a machine without cvxpy records the cvxpy study as skipped; the
    CPU build that replays the GPU results computes that study itself (and only that one)."""

    def t(*, n, device, seed):
        return n

    def c(*, n, device, seed):
        return f"{n} on {device}"

    def solver_study(*, n, device, seed):
        raise ModuleNotFoundError("No module named 'cvxpy'", name="cvxpy")

    params = {"n": 2, "seed": 0, "profile": "full"}
    # the GPU machine: the torch study is cached, the solver study is recorded as skipped
    cache.cached("99-test", "t", lambda: 2, params=params, device="cuda", meta={"profile": "full", "device_name": "cuda (H100)"})
    skipped = cache.cached("99-test", "c", lambda: solver_study(n=2, device="cuda", seed=0), params=params,
                           device="cuda", skip_missing_modules=True)
    assert skipped.value is None and skipped.meta["skipped"] and skipped.meta["missing"] == "cvxpy"
    with pytest.raises(ModuleNotFoundError):  # without the flag a missing module still fails the run
        cache.cached("99-test", "c2", lambda: solver_study(n=2, device="cuda", seed=0), params=params, device="cuda")

    def broken_study():
        import lib_module_that_does_not_exist  # noqa: F401

    with pytest.raises(ModuleNotFoundError):  # a module not named optional is an error even with the flag
        cache.cached("99-test", "c3", broken_study, params=params, device="cuda", skip_missing_modules=True)
    with pytest.raises(cache.NeedsHost, match="cvxpy"):
        cache.cached("99-test", "c", lambda: 0, params=params, device="cuda", require_hit=True)
    # the CPU build: replays the torch study, computes the skipped one on the CPU
    ctx = chapter.start("99-test", "full", "cuda", 0)
    assert ctx.replay
    assert ctx.study(t, N(2)) == 2
    assert ctx.study(c, N(2)) == "2 on cpu"
    assert [s["device"] for s in ctx.studies_run] == ["cuda", "cpu"]


def test_a_chapter_run_starts_with_no_stale_figures(tmp_build):
    stale = tmp_build / "figures" / "99-test" / "old.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"x")
    chapter.start("99-test", "fast", "cpu", 0, record=False)
    assert stale.exists()  # studies run outside the chapter leave the chapter's files alone
    chapter.start("99-test", "fast", "cpu", 0)
    assert not stale.exists()


def test_printed_values_bound_rounding_noise():
    """Values below the noise floor print as a bound; others with a fixed number of digits."""
    f = claims.fmt_value
    assert f(7.7383e-13) == f(1.4566e-13) == f(4.4e-9) == "< 1e-08"
    assert f(-4e-15) == "> -1e-08" and f(0.0) == "0"
    assert f(1.0000000000001) == f(0.9999999999999) == "1"
    assert f(3.14159265) == "3.142" and f(123456.7) == "123457" and f(2.5e-8) == "2.5e-08"
    assert f(float("inf")) == "inf"


def test_a_claim_prints_its_value_at_the_precision_its_tolerance_supports(tmp_build):
    """Measured 1e-11 in one run and 1e-9 in the next against a tolerance of 1e-6: both print as the
    same bound, a hundredth of the tolerance; a value near the tolerance keeps its digits."""
    reg = claims.ClaimRegistry("99-test", {})
    a = reg.check("a", "s", paper="k", where="w", source="paper", kind="identity", measured=1.072e-11, upper=1e-6, quiet=True)
    b = reg.check("b", "s", paper="k", where="w", source="paper", kind="identity", measured=1.04e-9, upper=1e-6, quiet=True)
    c = reg.check("c", "s", paper="k", where="w", source="paper", kind="identity", measured=3.2e-7, upper=1e-6, quiet=True)
    d = reg.check("d", "s", paper="k", where="w", source="paper", kind="identity", measured=5.0 + 1e-12, expected=5.0, tol=1e-3, quiet=True)
    assert "m = < 1e-08;" in a.summary() and a.summary().replace("a:", "b:") == b.summary()
    assert "m = 3.2e-07;" in c.summary() and "m = 5;" in d.summary()


def test_a_figure_citation_parses_and_names_what_a_citing_author_needs():
    from pybtex.database import parse_string

    from lib.book import sphinxext

    bib, plain = sphinxext.citation(
        "01-single-neuron", "gamma3d", "1.2", "Limits of gradient flow for each gamma. The rest.",
        "1. A single neuron", "https://example.org/book/01-single-neuron.html#fig-ch01-gamma3d",
        {"commit": "abc123", "profile": "fast"})
    entry = parse_string(bib, "bibtex").entries["ibbook-ch01-gamma3d"]
    assert entry.fields["title"] == "{Fig. 1.2: Limits of gradient flow for each gamma}"
    assert "Vardi \\& Shamir" in entry.fields["note"]  # LaTeX-safe
    bib2, _ = sphinxext.citation("01-single-neuron", "x", "1.3", "Flow on $D_\\gamma$ for w_3 > 0.", "t", "", {})
    assert "{Fig. 1.3: Flow on $D_\\gamma$ for w\\_3 > 0}" in bib2
    assert entry.fields["url"].endswith("#fig-ch01-gamma3d")
    assert "Vardi" in entry.fields["note"] and "abc123" in entry.fields["note"] and "fast" in entry.fields["note"]
    assert "1. A single neuron" in entry.fields["howpublished"] and "version" in entry.fields["howpublished"]
    assert entry.persons["author"] and "Fig. 1.2" in plain and plain.endswith("#fig-ch01-gamma3d")


def test_plotted_data_lists_every_line_and_scatter():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2)
    a.plot([0, 1, 2], [1, 2, 3], label="rk4")
    a.set_title("left")
    b.scatter([0.5], [4.0])
    rows = figures.plotted_data(fig).splitlines()
    plt.close(fig)
    assert rows[0] == "panel,series,kind,x,y" and rows[1] == "left,rk4,line,0.0,1.0"
    assert rows[-1] == "panel 2,points 1,points,0.5,4.0" and len(rows) == 5

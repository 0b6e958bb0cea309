"""Unit tests of lib.kinks: kink extraction and merging for trained networks."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib import kinks


def test_neuron_kinks():
    a = np.array([[2.0, -1.0, 3.0]])
    w = np.array([[0.5, -2.0, 0.0]])
    b = np.array([[1.0, 1.0, 1.0]])
    pos, jump = kinks.neuron_kinks(a, w[..., None], b)
    assert np.allclose(pos[0, :2], [-2.0, 0.5]) and np.isinf(pos[0, 2])
    assert np.allclose(jump, [[1.0, -2.0, 0.0]])


def test_merge_clusters_and_threshold():
    pos = np.array([[0.0, 0.001, 0.002, 1.0, 1.5, 5.0], [0.3, 0.3, -0.3, 2.0, 2.0, 2.0]])
    jump = np.array([[1.0, 1.0, 2.0, 1e-9, -0.5, 3.0], [1.0, -1.0, 0.5, 0.2, 0.2, 0.2]])
    k = kinks.merge(pos, jump, lo=-1.0, hi=3.0, radius=0.01, threshold=1e-6)
    assert k.count.tolist() == [2, 2]
    p0, s0 = k.run(0)
    assert np.allclose(s0, [4.0, -0.5])
    assert p0[0] == pytest.approx((0.001 + 2 * 0.002) / 4)
    p1, s1 = k.run(1)  # the cancelling pair at 0.3 vanishes; 2.0 sums
    assert np.allclose(p1, [-0.3, 2.0]) and np.allclose(s1, [0.5, 0.6])
    assert kinks.kink_cost(k, "free") == pytest.approx([4.5, 1.1])


@settings(max_examples=20, deadline=None, derandomize=True)
@given(st.integers(0, 1000))
def test_merge_preserves_the_function_on_the_hull(seed):
    """Merging within a radius changes f only near the merged kinks; total jump is conserved."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform(-2, 2, (3, 30))
    jump = rng.normal(size=(3, 30))
    k = kinks.merge(pos, jump, lo=-3.0, hi=3.0, radius=0.0, threshold=0.0)
    assert np.allclose(np.nansum(k.jump, 1), jump.sum(1))
    assert (k.count == 30).all()


def test_validation():
    with pytest.raises(ValueError):
        kinks.merge(np.zeros((1, 2)), np.ones((1, 2)), lo=1.0, hi=0.0, radius=0.1, threshold=0.0)
    with pytest.raises(ValueError):
        kinks.neuron_kinks(np.ones((1, 2)), np.ones((1, 2, 2)), np.ones((1, 2)))

"""The execution and build machinery, without executing chapters."""

import pytest

from lib import runner


def test_chapters_follow_the_toc():
    stems = runner.chapters()
    assert stems, "no chapters found"
    assert stems == sorted(stems)
    assert all(s[:2].isdigit() for s in stems)


def test_resolve_aliases():
    first = runner.chapters()[0]
    num = first.split("-")[0]
    for alias in (f"ch{num}", num, str(int(num)), first):
        assert runner.resolve([alias]) == [first]
    assert runner.resolve(["all"]) == runner.chapters()
    with pytest.raises(SystemExit, match="unknown chapter"):
        runner.resolve(["ch99"])


def test_claims_markdown_lists_every_claim_with_numbers():
    rec = {"chapter": "01-x", "profile": "fast", "device_name": "cpu", "commit": "abc"}
    cs = {"01-x": {"n_claims": 2, "n_passed": 2, "claims": [
        {"id": "a", "statement": "s|t", "paper": "k", "where": "w", "measured": 1.5e-12,
         "criterion": "m <= 1e-10", "passed": True, "values": {"g=1": 2.0}},
        {"id": "b", "statement": "u", "paper": "k", "where": "w", "measured": 3.0,
         "criterion": "|m - 3| <= 0", "passed": True, "values": {}},
    ]}}
    md = runner.claims_markdown([rec], cs)
    assert "**2 of 2 claims pass**" in md
    assert "1.5e-12" in md and "g=1 = 2" in md and "s|t" in md
    assert md.count("✓") == 2


def test_execute_rejects_bad_profile():
    with pytest.raises(ValueError, match="invalid profile"):
        runner.execute(runner.chapters()[0], profile="huge")

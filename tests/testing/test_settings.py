"""Hypothesis settings for oracle tests: few examples, no deadline, registered profiles."""

import hypothesis
from hypothesis import given
from hypothesis import strategies as st

import fisherlab as fl


def test_profiles_are_registered_with_small_counts_and_no_deadline():
    assert fl.testing.PROFILES == ("fisherlab", "fisherlab-ci", "fisherlab-thorough")
    for name in fl.testing.PROFILES:
        s = hypothesis.settings.get_profile(name)
        assert s.deadline is None
        assert hypothesis.HealthCheck.too_slow in s.suppress_health_check
    assert hypothesis.settings.get_profile("fisherlab").max_examples == 10
    assert hypothesis.settings.get_profile("fisherlab-ci").derandomize


calls = []


@fl.testing.settings
@given(st.integers())
def _decorated(i):
    calls.append(i)


def test_settings_decorate_a_test():
    calls.clear()
    _decorated()
    assert 1 <= len(calls) <= 10


@fl.testing.settings(max_examples=3)
@given(st.integers())
def _three(i):
    calls.append(i)


def test_settings_take_overrides():
    calls.clear()
    _three()
    assert 1 <= len(calls) <= 3

"""Hypothesis settings for oracle tests (``fl.testing.settings`` and registered profiles).

An oracle test compiles fisherlab's references for every new architecture and batch shape, so
Hypothesis's defaults (100 examples, a 200 ms deadline) make it slow and flaky. These settings
draw few examples, switch the deadline off (the first example of a shape pays the compilation)
and silence the too-slow health check:

=====================  ============  ===========  ========================================
profile                max_examples  derandomize  use
=====================  ============  ===========  ========================================
``fisherlab``          10            no           local runs (``fl.testing.settings``)
``fisherlab-ci``       10            yes          CI: the same draws every run, no database
``fisherlab-thorough`` 200           no           a nightly or release run
=====================  ============  ===========  ========================================

Use ``@fl.testing.settings`` (or ``@fl.testing.settings(max_examples=3)``) on a test, or
``hypothesis.settings.load_profile("fisherlab-ci")`` in a ``conftest.py`` (the profiles are
registered when this module is imported, i.e. on the first access to ``fl.testing.settings``
or ``fl.testing.PROFILES``).

>>> import hypothesis, fisherlab as fl
>>> fl.testing.PROFILES
('fisherlab', 'fisherlab-ci', 'fisherlab-thorough')
>>> s = hypothesis.settings.get_profile("fisherlab")
>>> s.max_examples, s.deadline
(10, None)
"""

from __future__ import annotations

import hypothesis
from hypothesis import HealthCheck

__all__ = ["PROFILES", "settings"]

_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                      HealthCheck.data_too_large])
_SETTINGS = {
    "fisherlab": hypothesis.settings(max_examples=10, **_COMMON),
    "fisherlab-ci": hypothesis.settings(max_examples=10, derandomize=True, database=None,
                                        print_blob=True, **_COMMON),
    "fisherlab-thorough": hypothesis.settings(max_examples=200, **_COMMON),
}
for _name, _profile in _SETTINGS.items():
    hypothesis.settings.register_profile(_name, _profile)

#: the registered Hypothesis profile names (``hypothesis.settings.get_profile(name)``)
PROFILES = tuple(_SETTINGS)


def settings(test=None, **overrides):
    """Hypothesis settings for an oracle test: the ``fisherlab`` profile (10 examples, no deadline).

    ``@settings`` applies the profile to a test; ``@settings(max_examples=3, ...)`` applies it
    with overrides (any ``hypothesis.settings`` argument).

    Args:
      test: the test function (when used as ``@settings`` without parentheses).
      overrides: ``hypothesis.settings`` arguments that replace the profile's.

    Returns:
      the decorated test, or a decorator.
    """
    chosen = hypothesis.settings(_SETTINGS["fisherlab"], **overrides)
    return chosen if test is None else chosen(test)

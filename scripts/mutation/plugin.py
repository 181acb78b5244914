"""pytest plugin of the mutation harness (loaded with ``-p scripts.mutation.plugin``).

Inside one test run of one mutant (or of the unmutated baseline) it

* registers the Hypothesis profile ``mutation`` (the ``ci`` profile's 8 derandomized examples,
  no database, no shrinking, no health checks: a mutant's verdict is reproducible and a
  failing property stops at its first counterexample);
* orders the tests: those that killed earlier mutants of the same module first, then those
  whose source names the mutated function, then the rest by baseline duration;
* classifies every failure as an ``assertion`` kill (``AssertionError``, pytest's ``Failed``
  -- e.g. ``pytest.raises`` that did not raise -- also inside an exception group) or a
  ``crash`` (any other exception: ``TypeError``, ``NameError``, an error from the library...);
* stops the run at the first assertion kill, or after two crashes (``FISHERLAB_MUTATION_STOP``);
* writes a JSON result (``FISHERLAB_MUTATION_RESULT``): failures, per-test durations, the
  number of tests passed, and the file ``fisherlab`` was imported from.
"""

from __future__ import annotations

import inspect
import json
import os
import sys

import pytest

_RESULT = os.environ.get("FISHERLAB_MUTATION_RESULT")
_ORDER = os.environ.get("FISHERLAB_MUTATION_ORDER")
_STOP = os.environ.get("FISHERLAB_MUTATION_STOP", "0") == "1"
_MAX_CRASHES = 2

_failures: list[dict] = []
_durations: dict[str, float] = {}
_passed = 0


def _register_profile() -> None:
    try:
        import hypothesis
    except ImportError:  # a project without Hypothesis
        return
    hypothesis.settings.register_profile(
        "mutation", max_examples=8, derandomize=True, database=None, deadline=None,
        print_blob=False, suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.reuse, hypothesis.Phase.generate])


_register_profile()


def _leaves(exc: BaseException):
    subs = getattr(exc, "exceptions", None)
    if isinstance(subs, (list, tuple)) and subs:
        for s in subs:
            yield from _leaves(s)
    else:
        yield exc


def classify(exc: BaseException) -> str:
    """``"assertion"`` if an assertion failed (anywhere in an exception group), else ``"crash"``."""
    for leaf in _leaves(exc):
        if isinstance(leaf, AssertionError):
            return "assertion"
        if isinstance(leaf, pytest.fail.Exception):  # pytest.fail, pytest.raises DID NOT RAISE
            return "assertion"
    return "crash"


def _order_key(info):
    first = {nid: i for i, nid in enumerate(info.get("first", []))}
    keywords = [k for k in info.get("keywords", []) if k]
    durations = info.get("durations", {})

    def key(item):
        mentions = 1
        if keywords:
            try:
                text = inspect.getsource(item.function)
            except (OSError, TypeError, AttributeError):
                text = ""
            text += item.nodeid
            mentions = 0 if any(k in text for k in keywords) else 1
        return (first.get(item.nodeid, len(first)), mentions, durations.get(item.nodeid, 1e9))

    return key


def pytest_collection_modifyitems(session, config, items):
    if not _ORDER:
        return
    with open(_ORDER) as fh:
        info = json.load(fh)
    items.sort(key=_order_key(info))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    global _passed
    outcome = yield
    rep = outcome.get_result()
    _durations[item.nodeid] = _durations.get(item.nodeid, 0.0) + rep.duration
    if rep.failed:
        exc = call.excinfo.value if call.excinfo is not None else AssertionError(rep.longreprtext)
        kind = classify(exc)
        _failures.append({"nodeid": item.nodeid, "when": rep.when, "kind": kind,
                          "exception": type(exc).__name__, "message": str(exc)[:300]})
        if _STOP:
            crashes = sum(f["kind"] == "crash" for f in _failures)
            if kind == "assertion" or crashes >= _MAX_CRASHES:
                item.session.shouldstop = "mutation harness: mutant killed"
    elif rep.when == "call" and rep.passed:
        _passed += 1


def pytest_collectreport(report):
    if report.failed:
        _failures.append({"nodeid": report.nodeid, "when": "collect", "kind": "crash",
                          "exception": "CollectionError", "message": str(report.longrepr)[-300:]})


def pytest_sessionfinish(session, exitstatus):
    if not _RESULT:
        return
    mod = sys.modules.get("fisherlab")
    with open(_RESULT, "w") as fh:
        json.dump({"failures": _failures, "durations": _durations, "passed": _passed,
                   "collected": session.testscollected, "exitstatus": int(exitstatus),
                   "fisherlab": getattr(mod, "__file__", None)}, fh)

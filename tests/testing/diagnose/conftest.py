"""The diagnose tests run the families strictly: an error inside a family fails the test
(in use, it is noted in the ``no_known_pattern`` evidence instead)."""

import pytest

from fisherlab.testing._diagnose import _driver


@pytest.fixture(autouse=True)
def strict_families(monkeypatch):
    monkeypatch.setattr(_driver, "STRICT", True)

"""Resolve a derivation's numeric counterpart, a dotted name such as
``fisherlab.likelihoods.Categorical.output_fisher`` (a module path, then attributes)."""

from __future__ import annotations

import importlib


def resolve(dotted: str):
    module, _, attr = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module), attr)
    except ImportError:
        return getattr(resolve(module), attr)

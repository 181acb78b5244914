"""Every ``>>>`` example in fisherlab's docstrings runs and prints what it claims."""

import doctest
import importlib
import pkgutil

import pytest

import fisherlab

OPTIONAL = {"fisherlab.testing.torch"}  # needs the optional torch extra


def _modules():
    names = ["fisherlab"]
    for info in pkgutil.walk_packages(fisherlab.__path__, "fisherlab."):
        if info.name not in OPTIONAL and not info.name.startswith("fisherlab._theorems"):
            names.append(info.name)
    return sorted(names)


def _with_examples():
    out = []
    finder = doctest.DocTestFinder(exclude_empty=True)
    for name in _modules():
        module = importlib.import_module(name)
        if any(t.examples for t in finder.find(module, name)):
            out.append(name)
    return out


MODULES = _with_examples()


def test_examples_exist():
    assert MODULES, "no docstring examples found"


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             verbose=False, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"

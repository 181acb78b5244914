"""Back-links between the proofs and the numeric code: each numeric counterpart a derivation
names says, in its docstring, which derivations stand behind it -- and every derivation a
docstring names is registered and names that function in turn."""

import inspect
import re

import pytest

import fisherlab as fl
from fisherlab import proofs

from _resolve import resolve

_LINE = re.compile(r"Derivations:\s*(.*?)(?:\.\s*$|\.\n\s*\n|\Z)", re.S)
_NAME = re.compile(r"``([a-z_]+\.[a-z0-9_]+)``")

PAIRS = sorted({(n, d.name) for d in proofs.all() for n in d.numeric})


def _named(obj) -> list[str]:
    doc = inspect.getdoc(obj) or ""
    m = _LINE.search(doc)
    return _NAME.findall(m.group(1)) if m else []


@pytest.mark.parametrize("numeric, derivation", PAIRS, ids=[f"{n}:{d}" for n, d in PAIRS])
def test_numeric_docstring_names_its_derivation(numeric, derivation):
    assert derivation in _named(resolve(numeric)), (
        f"the docstring of {numeric} must list ``{derivation}`` in its 'Derivations:' line")


def _public_callables():
    for mod in (fl, fl.updates, fl.kfac, fl.optax, fl.likelihoods):
        for name in getattr(mod, "__all__", ()):
            obj = getattr(mod, name)
            yield f"{mod.__name__}.{name}", obj
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if callable(member) and not attr.startswith("_"):
                        yield f"{mod.__name__}.{name}.{attr}", member


def test_every_derivation_a_docstring_names_is_registered_and_names_it_back():
    known = set(proofs.names())
    backed = {}
    for n, d in PAIRS:
        backed.setdefault(inspect.unwrap(resolve(n)), set()).add(d)
    seen = 0
    for dotted, obj in _public_callables():
        for name in _named(obj):
            seen += 1
            assert name in known, f"{dotted} names {name!r}, which is not a registered derivation"
            assert name in backed.get(inspect.unwrap(obj), set()), (
                f"{dotted} names {name!r}, but that derivation does not list it as a numeric counterpart")
    assert seen, "no public docstring names a derivation"

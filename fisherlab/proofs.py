"""The registry of derivations (``fl.proofs``).

The theorems live in the top-level ``proofs/`` folder of the repository, one
module per theorem family, each declaring a module-level ``DERIVATIONS`` list.
In an installed wheel the same folder is the package ``fisherlab._theorems``
(see ``pyproject.toml``); from a source checkout it is loaded from ``proofs/``
beside the ``fisherlab`` package. Both paths give the same derivations.

A derivation is in chain form (:class:`fisherlab.symbolic.Derivation`) or, until its family
moves over, in the legacy form (:class:`fisherlab.symbolic.LegacyDerivation`, ``.legacy`` is
true).
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from pathlib import Path

from fisherlab.symbolic import Derivation, LegacyDerivation

__all__ = ["all", "get", "names", "modules"]

_CACHE: dict[str, Derivation | LegacyDerivation] | None = None


def _theorem_package():
    src = Path(__file__).resolve().parent.parent / "proofs"
    if (src / "__init__.py").exists():
        # Source checkout (or editable install): load proofs/ as fisherlab._theorems.
        if "fisherlab._theorems" not in sys.modules:
            spec = importlib.util.spec_from_file_location(
                "fisherlab._theorems", src / "__init__.py", submodule_search_locations=[str(src)])
            module = importlib.util.module_from_spec(spec)
            sys.modules["fisherlab._theorems"] = module
            spec.loader.exec_module(module)
        return sys.modules["fisherlab._theorems"]
    try:
        return importlib.import_module("fisherlab._theorems")
    except ImportError as exc:  # pragma: no cover - broken install
        raise ImportError(
            "fisherlab's theorems were not found: neither a proofs/ folder beside the package "
            "nor the installed package fisherlab._theorems") from exc


def modules() -> list[str]:
    """Names of the theorem modules, sorted."""
    pkg = _theorem_package()
    return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_"))


def _load() -> dict[str, Derivation | LegacyDerivation]:
    global _CACHE
    if _CACHE is None:
        found: dict[str, Derivation] = {}
        for mod_name in modules():
            mod = importlib.import_module(f"fisherlab._theorems.{mod_name}")
            for d in getattr(mod, "DERIVATIONS", ()):
                if not isinstance(d, (Derivation, LegacyDerivation)):
                    raise TypeError(f"proofs/{mod_name}.py: DERIVATIONS holds {type(d).__name__} "
                                    f"{getattr(d, 'name', d)!r}, not a Derivation")
                if d.name in found:
                    raise ValueError(f"duplicate derivation name {d.name!r} in proofs/{mod_name}.py")
                found[d.name] = d
        _CACHE = found
    return _CACHE


def all() -> list[Derivation | LegacyDerivation]:  # noqa: A001 - the public API name is fl.proofs.all()
    """Every registered derivation, in module then declaration order."""
    return list(_load().values())


def names() -> list[str]:
    """The names of every registered derivation, in the order of :func:`all`."""
    return list(_load())


def get(name: str) -> Derivation | LegacyDerivation:
    """The derivation called ``name`` (``KeyError`` listing the known names otherwise)."""
    table = _load()
    if name not in table:
        raise KeyError(f"no derivation named {name!r}; known: {', '.join(table)}")
    return table[name]


def __dir__():
    return list(__all__)

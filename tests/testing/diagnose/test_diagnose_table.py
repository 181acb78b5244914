"""The planted-bug table (``planted_bugs.py``): every kind of finding from a planted bug.

Fixed problems and seeds, so each row is deterministic; the table covers every kind of
:data:`fisherlab.testing.KINDS` except the Hessian and GGN-versus-Fisher swaps, which need a
second-order engine the NumPy oracle does not have (``test_diagnose_quantities.py`` plants
them with fisherlab's own references).
"""

import pytest

from fisherlab.testing import KINDS, diagnose

from planted_bugs import cases

CASES = cases()
NOT_PLANTED = {"hessian_for_ggn", "fisher_for_ggn", "ggn_for_fisher", "hessian_for_fisher",
               "empirical_fisher_for_hessian", "hessian_for_empirical_fisher"}


def test_the_table_plants_every_other_kind():
    assert {row[4] for row in CASES} == set(KINDS) - NOT_PLANTED


@pytest.mark.parametrize("name,make,quantity,build,kind", CASES, ids=[c[0] for c in CASES])
def test_planted_bug_is_named_first(name, make, quantity, build, kind):
    P = make()
    findings = diagnose(build(P), P.reference(quantity), problem=P, quantity=quantity)
    assert findings and findings[0].kind == kind, [str(f) for f in findings]

"""kronecker.*: the Kronecker algebra in chain form -- general-dimension chains (entry-wise,
or matrix algebra citing the mixed-product and transpose rules) and exhaustive explicit
chains -- with controls that are the mistakes people make; the numeric counterparts are
checked in tests/kfac and the builders against NumPy in tests/symbolic/test_toolkit.py."""

import pytest
import sympy as sp

from _kfac_proof_helpers import check_metadata, family, report
from fisherlab import proofs
from fisherlab.symbolic import Entrywise, Explicit, Lemma

NAMES = family("kronecker")


def test_family_is_complete_and_in_chain_form():
    assert set(NAMES) == {"kronecker.mixed_product", "kronecker.transpose", "kronecker.inverse",
                          "kronecker.vec", "kronecker.eigenpairs", "kronecker.trace_det_frobenius",
                          "kronecker.psd"}
    assert not any(proofs.get(n).legacy for n in NAMES)


@pytest.mark.parametrize("name, tier, words", [
    ("kronecker.mixed_product", "A+B", ("general m, n, k, p, q, l", "64 shapes")),
    ("kronecker.transpose", "A+B", ("general m, n, p, q", "81 shapes")),
    ("kronecker.inverse", "A", ("never an inverse rewrite rule",)),
    ("kronecker.vec", "A+B", ("general m, n, p, q", "81 shapes", "both orders")),
    ("kronecker.eigenpairs", "A+B", ("general n, m",)),
    ("kronecker.trace_det_frobenius", "B", ("det multiplicative",)),
    ("kronecker.psd", "A+B", ("general n, m",)),
])
def test_metadata_and_verification(name, tier, words):
    check_metadata(name, tier, words)
    r, seconds = report(name)
    r.raise_if_failed()
    assert r.achieved == tier and seconds < 30


def test_general_dimension_chains_are_entrywise_or_cite_proved_rules():
    """No tier-A chain of the family checks 'one generic summand': each A chain is either
    entry-wise (whole finite sums) or matrix algebra citing verified lemmas."""
    for name in NAMES:
        d = proofs.get(name)
        for chain in d.chains():
            kinds = {type(link.by) for link in chain.links}
            if Explicit in kinds:
                continue
            assert kinds & {Entrywise, Lemma}, (name, chain.title)


def test_inverse_is_derived_from_the_mixed_product_rule():
    d = proofs.get("kronecker.inverse")
    (chain,) = d.chains()
    cited = {link.by.derivation.name for link in chain.links if isinstance(link.by, Lemma)}
    assert cited == {"kronecker.mixed_product"}
    assert {sp.Q.invertible(sp.MatrixSymbol("A", *s)) for s in [(sp.Symbol("n", integer=True, positive=True),) * 2]} \
        <= set(d.hypotheses)


@pytest.mark.parametrize("name, control", [
    ("kronecker.mixed_product", "order_swapped"),     # (A⊗B)(C⊗D) = (CA)⊗(DB)
    ("kronecker.vec", "cvec_classic_swap"),           # column-major vec with the row-major rule
    ("kronecker.vec", "rvec_swap"),
    ("kronecker.inverse", "factors_swapped"),         # (A⊗B)⁻¹ = B⁻¹⊗A⁻¹
    ("kronecker.psd", "symmetric_factor"),            # PSD claimed for a merely symmetric factor
])
def test_the_classic_mistakes_are_refuted_with_a_witness(name, control):
    r, _ = report(name)
    c = {c.name: c for c in r.controls}[control]
    assert c.rejected and c.witness and c.value, (c.name, c.error)

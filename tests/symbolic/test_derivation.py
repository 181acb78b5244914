"""The derivation engine: what it accepts, what it rejects, and that it never passes what it could not check."""

import dataclasses

import pytest
import sympy as sp

from fisherlab.symbolic import (
    Derivation,
    NegativeControl,
    Step,
    Tier,
    find_witness,
    index_markdown,
    is_zero,
    to_markdown,
    verify,
)

x, y = sp.symbols("x y", real=True)
t = sp.Symbol("t", positive=True)
A = sp.Function("A")


def _derivation(steps, controls=None, **kw):
    if controls is None:
        controls = [NegativeControl("false", "x = x + 1", lambda: Step.equal("f", x, x + 1, justification=""))]
    return Derivation(name=kw.pop("name", "test.demo"), title="demo", statement="x = x",
                      tier=kw.pop("tier", Tier.B), scope="test", build=lambda: steps,
                      negative_controls=controls, **kw)


def test_true_steps_pass_with_the_cheapest_canonicalisation():
    steps = [Step.equal("binomial", (x + y) ** 2, x**2 + 2 * x * y + y**2, justification="expand"),
             Step.equal("rational", 1 / (x + 1) + x / (x + 1), 1, justification="cancel"),
             Step.equal("matrix", sp.Matrix([[x, 1], [0, y]]) * sp.eye(2), sp.Matrix([[x, 1], [0, y]]),
                        justification="identity")]
    report = verify(_derivation(steps))
    assert report.ok, report.summary()
    assert [s.passed for s in report.steps] == [True, True, True]
    assert report.steps[0].method == "expand"
    assert all(s.seconds >= 0 for s in report.steps)


def test_a_false_step_fails_the_derivation():
    report = verify(_derivation([Step.equal("wrong sign", (x - y) ** 2, x**2 + 2 * x * y + y**2,
                                            justification="")]))
    assert not report.ok
    assert not report.steps[0].passed
    with pytest.raises(AssertionError, match="NOT verified"):
        report.raise_if_failed()


def test_a_step_that_cannot_be_reduced_is_not_passed():
    # True identity about an abstract function that no canonicalisation can decide
    # (there is nothing to decide: it is false in general) -> must not pass.
    report = verify(_derivation([Step.equal("unknown", A(x), A(-x), justification="")]))
    assert not report.ok


def test_build_errors_are_failures_not_passes():
    def boom():
        raise RuntimeError("kaboom")

    d = Derivation(name="t.boom", title="b", statement="s", tier=Tier.A, scope="s", build=boom,
                   negative_controls=[NegativeControl("c", "c", lambda: Step.equal("f", x, x + 1,
                                                                                  justification=""))])
    report = verify(d)
    assert not report.ok and "kaboom" in report.error


def test_a_step_with_mismatched_shapes_fails():
    report = verify(_derivation([Step.equal("shapes", sp.Matrix([x, y]), sp.Matrix([x]), justification="")]))
    assert not report.ok and "shape" in report.steps[0].error


def test_negative_control_rejected_only_with_an_exact_witness():
    report = verify(_derivation([Step.equal("ok", x, x, justification="")]))
    (c,) = report.controls
    assert c.rejected and "difference" in c.witness


def test_a_true_claim_as_control_is_not_rejected_and_fails_the_derivation():
    control = NegativeControl("actually true", "", lambda: Step.equal("t", (x + 1) ** 2, x**2 + 2 * x + 1,
                                                                      justification=""))
    report = verify(_derivation([Step.equal("ok", x, x, justification="")], [control]))
    assert not report.controls[0].rejected
    assert "accepted" in report.controls[0].error
    assert not report.ok


def test_abstract_function_control_needs_a_concrete_stand_in():
    u = sp.Symbol("u")
    claim = lambda: Step.equal("A even", A(x), A(-x), justification="")  # noqa: E731
    without = verify(_derivation([Step.equal("ok", x, x, justification="")],
                                 [NegativeControl("no witness", "", claim)]))
    assert not without.controls[0].rejected  # cannot evaluate A: not shown false
    with_w = verify(_derivation([Step.equal("ok", x, x, justification="")],
                                [NegativeControl("cubic", "", claim, witness={A: sp.Lambda(u, u**3)})]))
    assert with_w.controls[0].rejected


def test_nonnegative_steps_need_a_sum_of_squares_certificate():
    good = Step.nonnegative("sos", x**2 - 2 * x * y + 2 * y**2, (x - y) ** 2 + y**2, justification="")
    assert verify(_derivation([good])).ok
    not_certificate = Step.nonnegative("not sos", x**2 + y, x**2 + y, justification="")
    assert not verify(_derivation([not_certificate])).ok
    false_nonneg = NegativeControl("neg", "x^2 - 1 >= 0",
                                   lambda: Step.nonnegative("n", x**2 - 1, x**2 - 1, justification=""))
    r = verify(_derivation([good], [false_nonneg]))
    assert r.controls[0].rejected and r.ok


def test_every_derivation_needs_a_negative_control():
    with pytest.raises(ValueError, match="negative control"):
        Derivation(name="t.none", title="", statement="", tier=Tier.A, scope="", build=lambda: [],
                   negative_controls=[])
    with pytest.raises(TypeError, match="Tier"):
        _derivation([], tier="A")


def test_an_empty_proof_is_not_verified():
    assert not verify(_derivation([])).ok


def test_derivations_are_immutable():
    d = _derivation([Step.equal("ok", x, x, justification="")])
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.name = "other"


def test_is_zero_and_find_witness():
    assert is_zero(sp.exp(x) * sp.exp(-x) - 1)[0]
    assert is_zero(sp.log(t**2) - 2 * sp.log(t))[0]
    assert not is_zero(x - y)[0]
    subs, value = find_witness(x - y + 1)
    assert value != 0 and set(subs) == {x, y}
    assert find_witness(sp.Integer(0)) is None


def test_markdown_shows_status_structure_and_controls():
    d = _derivation([Step.equal("ok", x, x, justification="by reflexivity", display=r"x = x")],
                    axioms={"reflexivity": "x = x"}, references=["seed 003"], numeric=["fisherlab.fisher"])
    r = verify(d)
    page = to_markdown(d, r)
    assert "status: verified" in page and "$$" in page and "by reflexivity" in page
    assert "reflexivity" in page and "seed 003" in page and "`fisherlab.fisher`" in page
    assert "rejected ✔" in page
    failed = _derivation([Step.equal("bad", x, y, justification="")])
    assert "FAILED" in to_markdown(failed, verify(failed))
    assert "| [demo](test.demo.md) | B |" in index_markdown([(d, r)])


def test_huge_expressions_are_not_rendered_expanded():
    big = sp.expand((x + y + 1) ** 30)
    d = _derivation([Step.equal("big", big, big, justification="")])
    page = to_markdown(d, verify(d))
    assert "expanded form omitted" in page and len(page) < 5000


def test_even_powers_certify_nonnegativity_only_for_real_bases():
    z = sp.Symbol("z")  # no assumption: could be complex, and z**2 < 0 at z = i
    r = sp.Symbol("r", real=True)
    assert not verify(_derivation([Step.nonnegative("complex", z**2, z**2, justification="")])).ok
    assert verify(_derivation([Step.nonnegative("real", r**2 + 1, r**2 + 1, justification="")])).ok

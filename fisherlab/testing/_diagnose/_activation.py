"""Activation derivatives at the wrong point (``activation_derivative``).

A hand-written back-propagation multiplies by ``phi'(s)`` at every activation. Two slips give a
wrong but plausible curvature while the forward pass stays right:

* the derivative evaluated at the output ``a = phi(s)`` instead of at ``s`` --
  ``tanh'(a) = 1 - tanh(a)^2``, ``sigmoid'(a)``;
* the output form of the derivative (``1 - a^2`` for tanh, ``a (1 - a)`` for the sigmoid)
  evaluated at the pre-activation ``s`` -- ``1 - s^2``, ``s (1 - s)``.

For every activation kind in the model and each slip, the Jacobians are recomputed with that
derivative (:mod:`._network`, one compiled program for all slips) and ``desired`` is rebuilt
from them (:mod:`._rebuild`): the dense curvatures, the empirical Fisher and the gradient
covariance through ``J``, the K-FAC ``G`` factors through the pre-activation Jacobians. A match
within tolerance names the activation and the slip.
"""

from __future__ import annotations

from fisherlab.testing._diagnose import _network, _rebuild

__all__ = ["run"]


def run(ctx):
    rb = _rebuild.calibrate(ctx)
    if rb is None or (rb.kfac is not None and rb.kfac.what == "A"):
        return
    kinds = _network.activation_kinds(ctx.problem)
    if not kinds:
        return
    M, g = rb.true_output()
    for kind in kinds:
        for form in (1, 2):
            L = _network.layers(ctx.problem, _network.forms_for(kind, form))
            if rb.kfac is not None:
                Z = rb.with_output(M=M, g=g, Js=L["Js"])
            else:
                J = L["J"].reshape(L["J"].shape[0], -1, L["J"].shape[-1])
                Z = rb.with_output(M=M, g=g, J=J)
            desc = _network.ACTIVATIONS[kind][form - 1]
            ctx.col.test("activation_derivative", Z,
                         f"desired recomputed with every {kind} derivative replaced by {desc}",
                         50 + form, allow_factor=False,
                         data={"activation": kind, "formula": desc, "form": form})

"""``fl.testing.diagnose``: name the convention or bug that explains a curvature mismatch.

Every hypothesis is tested, never assumed: a :class:`Finding` is reported only when the
hypothesis *reproduces* ``actual`` -- ``||actual - Z|| <= tol ||Z||`` for the candidate
explanation ``Z`` (an alternative quantity, a permuted or masked ``desired``, ``desired``
recomputed with one ingredient replaced, possibly times a fitted scalar), with ``tol`` the
comparison tolerance (``rtol``; the float32 default when ``actual`` holds float32 numbers) --
or, for sampled labels, when the per-example output-space matrices are *identified* and have
the structure of sampled outer products (see :mod:`._monte_carlo`). When nothing reproduces
``actual`` the single finding is ``no_known_pattern`` with the evidence that was measured.

The hypotheses come in families, one private module each, run in stages (a later stage only
when the earlier ones reproduce nothing):

1. :mod:`._scalar` -- ``scalar_factor``: ``actual = c desired`` with ``c`` named from the
   problem (reduction ``N``, ``N/(N-1)``, squared-error conventions, a declared variance
   ignored or applied twice, the position count ``P`` of a ``Conv2d`` or sequence, the token
   count ``R``, a flipped sign, products of these);
   :mod:`._quantities` -- another quantity (``empirical_fisher_for_fisher``,
   ``ggn_for_hessian``, ``kfac_approximation``, ...);
   :mod:`._layout` / :mod:`._permutation` -- ``transposed_weight_layout``,
   ``kronecker_order_swapped``, ``parameter_order`` (any permutation, named in the problem's
   terms), ``bias_cross_terms_missing``, ``block_diagonal_only``.
2. :mod:`._kfac` -- ``kfac_factor_formula``; :mod:`._activation` --
   ``activation_derivative``; :mod:`._likelihood` -- ``output_matrix_formula``;
   :mod:`._examples` -- ``target_mismatch``, ``example_weighting``. These rebuild ``desired``
   from fisherlab's per-example quantities (:mod:`._network`, :mod:`._rebuild`) with one
   ingredient replaced.
3. :mod:`._monte_carlo` / :mod:`._mc_kfac` -- ``monte_carlo_estimate`` and
   ``label_sampling`` (labels identified but not independent draws from the model: argmax,
   one shared draw, another distribution), ``target_mismatch`` for data labels of other
   examples.

A float32 result compared at float64 tolerance is ``float32_rounding``.
"""

from fisherlab.testing._diagnose._driver import diagnose
from fisherlab.testing._diagnose._finding import KINDS, Finding

__all__ = ["Finding", "KINDS", "diagnose"]

"""The per-layer results of the K-FAC references: Kronecker factors and the EKFAC basis."""

from __future__ import annotations

from typing import NamedTuple, Optional

import jax

__all__ = ["EKFACFactors", "KFACFactors"]


class KFACFactors(NamedTuple):
    """The two Kronecker factors of one layer's K-FAC block.

    The layer block is ``G (x) A`` in the row-major order of the augmented weight ``[W b]``;
    with ``bias="separate"`` it is ``G (x) A`` for ``W`` and exactly ``G`` for ``b``, with no
    weight--bias cross terms (``docs/CONVENTIONS.md``, K-FAC). :func:`fisherlab.kfac.matrix`
    assembles it in parameter order.

    Attributes:
      A: input factor, ``(in'+1, in'+1)`` for ``bias="augmented"`` (inputs ``[a; 1]``) or
        ``(in', in')`` for ``bias="separate"``; ``in'`` is ``in_features`` for ``Dense`` and
        ``C_in k_h k_w`` for ``Conv2d``.
      G: pre-activation gradient factor, ``(out, out)``.

    References:
      J. Martens and R. Grosse, "Optimizing neural networks with Kronecker-factored
      approximate curvature", ICML 2015.

    >>> import jax.numpy as jnp, fisherlab as fl
    >>> f = fl.kfac.KFACFactors(A=jnp.eye(3), G=2.0 * jnp.eye(2))
    >>> f.A.shape, f.G.shape
    ((3, 3), (2, 2))
    """

    A: jax.Array
    G: jax.Array


class EKFACFactors(NamedTuple):
    """One layer of EKFAC.

    The block is ``(U_G (x) U_A) diag(vec S) (U_G (x) U_A)^T`` in the row-major order of
    ``[W b]``, and ``U_G diag(S_bias) U_G^T`` for a separate bias.

    Attributes:
      UA: eigenvectors (columns) of the K-FAC factor ``A``, ``(in'+1, in'+1)`` or
        ``(in', in')``.
      UG: eigenvectors (columns) of ``G``, ``(out, out)``.
      S: corrected eigenvalues ``(out, in'+1)`` (or ``(out, in')``); ``S[i, j]`` belongs to the
        eigenvector ``u_G,i (x) u_A,j``.
      S_bias: ``None`` (augmented bias) or, with ``bias="separate"``, the corrected eigenvalues
        ``(out,)`` of the bias block in the basis ``U_G``.

    References:
      T. George, C. Laurent, X. Bouthillier, N. Ballas and P. Vincent, "Fast approximate
      natural gradient descent in a Kronecker-factored eigenbasis", NeurIPS 2018.

    >>> import jax.numpy as jnp, fisherlab as fl
    >>> e = fl.kfac.EKFACFactors(UA=jnp.eye(3), UG=jnp.eye(2), S=jnp.ones((2, 3)))
    >>> e.S.shape, e.S_bias is None
    ((2, 3), True)
    """

    UA: jax.Array
    UG: jax.Array
    S: jax.Array
    S_bias: Optional[jax.Array] = None

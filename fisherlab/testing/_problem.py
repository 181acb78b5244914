"""``fl.testing.Problem``: the problem a candidate curvature matrix was computed on."""

from __future__ import annotations

import dataclasses
import functools
import hashlib

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

import fisherlab as fl
from fisherlab import nn
from fisherlab._core.precision import float64
from fisherlab._core.validation import check_choice
from fisherlab.testing import _peer_conventions, _problem_io

__all__ = ["Problem", "QUANTITIES", "Leaf"]

#: quantities :meth:`Problem.reference` computes (``desired`` in ``diagnose``).
QUANTITIES = ("hessian", "ggn", "fisher", "empirical_fisher", "gradient_covariance", "kfac",
              "kfac_factor_A", "kfac_factor_G")


@dataclasses.dataclass(frozen=True)
class Leaf:
    """One parameter tensor in the flat (``ravel_pytree``) order.

    ``start:stop`` is its slice of the flat vector, ``shape`` its shape, ``group`` the index of
    the top-level entry of ``params`` it belongs to (the layer for ``[(W, b), ...]``) and
    ``role`` ``"W"``, ``"b"`` or ``""``.
    """

    start: int
    stop: int
    shape: tuple[int, ...]
    group: int
    role: str


def _to_jax(tree):
    return jax.tree_util.tree_map(
        lambda a: jnp.asarray(a, jnp.float64) if np.issubdtype(np.asarray(a).dtype, np.floating)
        else jnp.asarray(a), tree)


@functools.partial(jax.jit, static_argnums=0)
def _outputs_jit(f, params, x):
    return jax.vmap(lambda xi: f(params, xi))(x)


@functools.partial(jax.jit, static_argnums=0)
def _jacobians_jit(f, params, x):
    flat, unravel = ravel_pytree(params)
    return jax.vmap(lambda xi: jax.jacrev(lambda p: f(unravel(p), xi))(flat))(x)


def _call(jitted, f, params, x):
    """``jitted`` (compiled once per ``f``), or its eager body when ``f`` is not hashable."""
    try:
        hash(f)
    except TypeError:
        return jitted.__wrapped__(f, params, x)
    return jitted(f, params, x)


class Problem:
    """A curvature problem: model, parameters, batch, likelihood and reduction.

    Args:
      f_or_model: a ``fl.nn.Sequential`` or any ``f(params, x) -> outputs (C,)`` on a single
        example (CONVENTIONS.md § Model).
      params: the parameter pytree (for a ``Sequential``: ``[(W, b), ...]``, ``W`` (out, in)).
      x: inputs ``(N, ...)``; y: targets in the likelihood's convention (API.md § Likelihoods).
      likelihood: a fisherlab likelihood.
      reduction: ``"mean"`` (default, the ``1/N`` of CONVENTIONS.md) or ``"sum"``.

    ``reference(quantity)`` computes fisherlab's float64 reference of a named quantity on the
    problem (cached), so :func:`fisherlab.testing.diagnose` can test alternative explanations.
    """

    def __init__(self, f_or_model, params, x, y, likelihood, *, reduction: str = "mean"):
        if not callable(f_or_model):
            raise TypeError(f"f_or_model must be a fl.nn.Sequential or a callable f(params, x), "
                            f"got {type(f_or_model).__name__}")
        self.reduction = check_choice(reduction, "reduction", {"mean", "sum"})
        self.model = f_or_model if isinstance(f_or_model, nn.Sequential) else None
        self.f = f_or_model
        if self.model is not None:
            self.model.check_params(params)
        with float64():
            self.params = _to_jax(params)
            self.x = jnp.asarray(x)
            if not jnp.issubdtype(self.x.dtype, jnp.integer):  # token ids stay integers
                self.x = self.x.astype(jnp.float64)
            self.y = jnp.asarray(y)
            if jnp.issubdtype(self.y.dtype, jnp.floating):
                self.y = self.y.astype(jnp.float64)
            flat, self._unravel = ravel_pytree(self.params)
        if self.x.ndim < 1 or self.x.shape[0] < 1:
            raise ValueError(f"x must have a leading batch axis with N >= 1, got shape {self.x.shape}")
        if self.y.ndim < 1 or self.y.shape[0] != self.x.shape[0]:
            raise ValueError(f"batch sizes differ: x has shape {tuple(self.x.shape)}, "
                             f"y has shape {tuple(self.y.shape)}")
        self.likelihood = likelihood
        self.flat_params = flat
        self._cache: dict = {}
        #: factors applied on top of fisherlab's references (see fisherlab.testing.torch)
        self._scales = {"curvature": 1.0, "empirical": 1.0}

    # ------------------------------------------------------------------ sizes and layout
    @property
    def num_params(self) -> int:
        return int(self.flat_params.shape[0])

    @property
    def num_examples(self) -> int:
        return int(self.x.shape[0])

    @property
    def num_outputs(self) -> int:
        """``C``: the natural parameters per output position (the last axis of the outputs)."""
        return int(self.outputs().shape[-1])

    @property
    def num_positions(self) -> int:
        """``R``: output positions per example (tokens of a token model), 1 for outputs ``(C,)``."""
        return int(np.prod(self.outputs().shape[1:-1], dtype=np.int64))

    def leaves(self) -> list[Leaf]:
        """The parameter tensors in flat order, grouped by top-level entry of ``params``."""
        out, offset = [], 0
        top = self.params if isinstance(self.params, (list, tuple)) else [self.params]
        for g, entry in enumerate(top):
            leaves = jax.tree_util.tree_leaves(entry)
            for i, leaf in enumerate(leaves):
                size = int(np.size(leaf))
                role = ""
                if self.model is not None:
                    role = "W" if i == 0 else "b"
                out.append(Leaf(offset, offset + size, tuple(np.shape(leaf)), g, role))
                offset += size
        if offset != self.num_params:  # pragma: no cover - dict pytrees reorder leaves
            return [Leaf(0, self.num_params, (self.num_params,), 0, "")]
        return out

    # ------------------------------------------------------------------ model evaluation
    def outputs(self) -> jax.Array:
        """Model outputs ``(N, ..., C)`` (float64)."""
        if "outputs" not in self._cache:
            with float64():
                self._cache["outputs"] = _call(_outputs_jit, self.f, self.params, self.x)
        return self._cache["outputs"]

    def jacobians(self) -> jax.Array:
        """Per-example Jacobians ``J_n = d f(theta, x_n) / d theta``, shape ``(N, ..., C, d)``."""
        if "jac" not in self._cache:
            with float64():
                self._cache["jac"] = _call(_jacobians_jit, self.f, self.params, self.x)
        return self._cache["jac"]

    @property
    def scale(self) -> float:
        """The reduction factor: ``1/N`` for mean, ``1`` for sum."""
        return 1.0 / self.num_examples if self.reduction == "mean" else 1.0

    # ------------------------------------------------------------------ references
    def reference(self, quantity: str, *, convention=None, **options) -> np.ndarray:
        """fisherlab's float64 reference of ``quantity`` on this problem (NumPy array, cached).

        ``quantity`` is one of :data:`QUANTITIES`; ``options`` are passed to the underlying
        function (e.g. ``bias="separate"`` for ``kfac``, ``layer=k`` for the K-FAC factors).
        ``convention``: a peer library's preset (``"curvlinops"``, ``"backpack"``,
        ``"kfac-jax"``, ``"asdl"``, ``"nngeometry"``, ``"laplace-torch"``, ``"pytorch"``; see
        :data:`fisherlab.testing.PEER_CONVENTIONS`) -- the reference mapped to what that
        library returns on this problem (its scaling, K-FAC bias and weight layout); or a
        PyTorch loss module (``torch.nn.MSELoss(reduction="sum")``, ...): the reference in that
        loss's scaling (the ``"pytorch"`` preset with the loss's own ``reduction``).

        >>> import jax, numpy as np, fisherlab as fl
        >>> model = fl.nn.Sequential([fl.nn.Dense(2, 3)])
        >>> p = fl.testing.Problem(model, model.init(jax.random.key(0)), np.ones((4, 2)),
        ...                        np.zeros((4, 3)), fl.Gaussian())
        >>> bool(np.allclose(p.reference("ggn", convention="curvlinops"),
        ...                  2 / 3 * p.reference("ggn")))  # MSELoss(reduction="mean"): 2/C
        True
        """
        check_choice(quantity, "quantity", set(QUANTITIES))
        if convention is not None:
            preset = _peer_conventions.get(convention)
            preset.factors(self)  # a likelihood or token layout the preset does not cover
            opts = preset.options(quantity, options)
            return preset.apply(self, quantity, Problem.reference(self, quantity, **opts), opts)
        key = (quantity, tuple(sorted(options.items())))
        try:
            hash(key)
        except TypeError:  # e.g. a jax.random key for fisher_type="mc": not cached
            return np.asarray(self._compute(quantity, **options), np.float64)
        if key not in self._cache:
            self._cache[key] = np.asarray(self._compute(quantity, **options), np.float64)
        return self._cache[key]

    def _compute(self, quantity, **options):
        red = {} if self.reduction == "mean" else {"reduction": "sum"}
        args = (self.f, self.params, self.x)
        dense = {**red, **options}  # e.g. tokens="flatten", chunk_size
        if quantity == "hessian":
            return fl.hessian(*args, self.y, self.likelihood, **dense)
        if quantity == "ggn":
            return fl.ggn(*args, self.y, self.likelihood, **dense)
        if quantity == "fisher":
            return fl.fisher(*args, self.likelihood, **dense)
        if quantity == "empirical_fisher":
            return fl.empirical_fisher(*args, self.y, self.likelihood, **dense)
        if quantity == "gradient_covariance":
            return fl.gradient_covariance(*args, self.y, self.likelihood, **dense)
        if self.model is None:
            raise ValueError(f"quantity {quantity!r} needs a fl.nn.Sequential problem "
                             f"(K-FAC is defined per Dense layer), got a plain function")
        bias = options.pop("bias", "augmented")
        layer = options.pop("layer", None)
        facs = fl.kfac.factors(self.model, self.params, self.x, self.y, self.likelihood,
                               bias=bias, **options)
        if quantity == "kfac":
            M = np.asarray(fl.kfac.matrix(facs, self.model, bias=bias))
            return M * (self.num_examples if self.reduction == "sum" else 1.0)
        k = 0 if layer is None else layer
        if not (isinstance(k, int) and 0 <= k < len(facs)):
            raise IndexError(f"layer must be a K-FAC block index in 0..{len(facs) - 1}, got {k!r}")
        if not hasattr(facs[k], "A"):  # an ExactBlock: a norm K-FAC keeps exact
            raise ValueError(f"K-FAC block {k} is a {type(facs[k]).__name__} (a LayerNorm/RMSNorm "
                             f"kept exact): it has no Kronecker factors A and G; compare it "
                             f"through quantity 'kfac'")
        return facs[k].A if quantity == "kfac_factor_A" else facs[k].G

    # ------------------------------------------------------------------ saving
    def save(self, path, *, extra=None) -> str:
        """Write the problem to ``path`` (a ``.npz``; the suffix is added if missing).

        Saves a ``fl.nn.Sequential`` model, its parameters, ``x``, ``y``, the likelihood and
        the reduction as plain arrays and JSON (no pickle); ``extra`` adds named arrays
        (stored as ``"extra.<name>"``). A problem on an arbitrary Python function ``f``, with a
        likelihood that is not fisherlab's, or converted from PyTorch cannot be saved
        (``TypeError``, saying why). Returns the path written.

        >>> import jax, numpy as np, fisherlab as fl, tempfile, os
        >>> model = fl.nn.Sequential([fl.nn.Dense(2, 2)])
        >>> p = fl.testing.Problem(model, model.init(jax.random.key(0)), np.ones((3, 2)),
        ...                        np.array([0, 1, 1]), fl.Categorical())
        >>> path = p.save(os.path.join(tempfile.mkdtemp(), "problem.npz"))
        >>> q = fl.testing.Problem.load(path)
        >>> bool(np.allclose(q.reference("fisher"), p.reference("fisher")))
        True
        """
        arrays = _problem_io.encode(self, extra)
        path = str(path)
        if not path.endswith(".npz"):
            path += ".npz"
        np.savez(path, **arrays)
        return path

    @classmethod
    def load(cls, path) -> Problem:
        """Read a problem written by :meth:`save` (extra arrays: ``np.load(path)["extra.<name>"]``)."""
        with np.load(str(path), allow_pickle=False) as z:
            model, params, x, y, lik, reduction = _problem_io.decode(dict(z))
        return cls(model, params, x, y, lik, reduction=reduction)

    def digest(self) -> str:
        """A short fingerprint of the parameters, inputs and targets (to match saved copies)."""
        h = hashlib.sha256()
        for a in (np.asarray(self.flat_params), np.asarray(self.x), np.asarray(self.y)):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:12]

    def __repr__(self) -> str:
        f = repr(self.model) if self.model is not None else getattr(self.f, "__name__", "f")
        return (f"Problem({f}, d={self.num_params}, N={self.num_examples}, "
                f"x {tuple(self.x.shape)}, y {tuple(self.y.shape)} {self.y.dtype}, "
                f"likelihood={self.likelihood!r}, reduction={self.reduction!r})")

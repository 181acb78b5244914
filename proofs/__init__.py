"""fisherlab's theorems: one module per theorem family, each with a ``DERIVATIONS`` list.

Loaded by :mod:`fisherlab.proofs` (as ``fisherlab._theorems``); run them with
``fisherlab prove`` and render them with ``fisherlab docs OUT_DIR``.
"""

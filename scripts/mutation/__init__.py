"""The mutation-testing harness of fisherlab (development tool; not part of the package).

``bash scripts/mutation.sh [MODULE|FOLDER ...]``: see :mod:`scripts.mutation.run`. The mapping
module -> tests and the run settings are in ``config.toml``; equivalent mutants, each with its
reason, in ``allowlist.toml``.
"""

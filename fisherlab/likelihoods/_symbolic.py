"""The former private name of :mod:`fisherlab.likelihoods.symbolic`, kept as an alias while the
proof families move to the public name (the same module object, so definitions are shared)."""

import sys

from fisherlab.likelihoods import symbolic

sys.modules[__name__] = symbolic

"""Semantic one-line mutants of a Python module, generated from its syntax tree.

A *mutant* is the module's source with one small change that a correct test suite should
notice: a flipped sign, a dropped term or factor, swapped arguments, a changed constant, a
skipped branch, a flipped comparison, ``mean`` for ``sum``, a dropped transpose, a dropped
call or re-assignment. Generation is pure and deterministic: the candidates of a source text
are enumerated in source order, and :func:`sample` draws from them with a seeded
:class:`random.Random` (string seeds are hashed with SHA-512, independent of
``PYTHONHASHSEED``), so the same seed always gives the same mutants.

Never mutated: docstrings, string literals and f-strings (error messages are asserted by
tests, not mutated), annotations, ``__all__``, imports, decorators, and lines marked
``# pragma: no mutate``.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import hashlib
import random

__all__ = ["Mutant", "OPERATORS", "candidates", "sample"]

#: the mutation operators, in the order the sampler interleaves them
OPERATORS = (
    "sign_flip",        # a + b <-> a - b, -x -> x
    "arith_op",         # a * b <-> a / b, a ** b -> a * b
    "drop_term",        # a + b -> a | b, a * b -> a | b, a / b -> a
    "swap_args",        # f(a, b) -> f(b, a); (a, b) -> (b, a); a - b -> b - a
    "constant",         # 0.5 -> 1.0, 3 -> 4, True -> False
    "skip_branch",      # if c: -> if False:; x if c else y -> y
    "compare_flip",     # < <-> <=, > <-> >=, == <-> !=, in <-> not in, is <-> is not
    "bool_op",          # and <-> or, a and b -> a, not x -> x
    "reduction_swap",   # mean <-> sum, max <-> min, argmax <-> argmin, all <-> any
    "drop_transpose",   # x.T -> x, jnp.transpose(x) -> x, swapaxes
    "drop_statement",   # a call statement or a re-assignment -> pass
)

_ATOMS = (ast.Name, ast.Attribute, ast.Call, ast.Subscript, ast.Constant, ast.List, ast.Tuple,
          ast.Dict, ast.Set)
_REDUCTIONS = {"mean": "sum", "sum": "mean", "max": "min", "min": "max", "argmax": "argmin",
               "argmin": "argmax", "all": "any", "any": "all", "nanmean": "nansum",
               "nansum": "nanmean", "amax": "amin", "amin": "amax"}
_TRANSPOSES = {"transpose", "swapaxes", "matrix_transpose"}
# calls whose positional arguments commute (or whose swap is a guaranteed TypeError)
_NO_SWAP = {"max", "min", "maximum", "minimum", "logaddexp", "isinstance", "issubclass",
            "hasattr", "getattr", "setattr", "add", "multiply", "logical_and", "logical_or"}
_BINOP_SYMBOL = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**",
                 ast.MatMult: "@", ast.FloorDiv: "//", ast.Mod: "%"}
_CMP_SYMBOL = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==",
               ast.NotEq: "!=", ast.In: "in", ast.NotIn: "not in", ast.Is: "is",
               ast.IsNot: "is not"}
# boundary flip first, negation second
_CMP_MUTANTS = {"<": ("<=", ">="), "<=": ("<", ">"), ">": (">=", "<="), ">=": (">", "<"),
                "==": ("!=",), "!=": ("==",), "in": ("not in",), "not in": ("in",),
                "is": ("is not",), "is not": ("is",)}


@dataclasses.dataclass(frozen=True)
class Mutant:
    """One mutant of one module.

    Attributes:
      module: the module's path relative to the repository root (``fisherlab/x.py``).
      operator: one of :data:`OPERATORS`.
      line: the first changed line (1-based).
      description: what changed, e.g. ``"a - b -> a + b"``.
      source: the whole mutated source text.
      before: the changed line(s) of the original, stripped and joined by ``" / "``.
      after: the same line(s) of the mutant.
    """

    module: str
    operator: str
    line: int
    description: str
    source: str
    before: str
    after: str

    @property
    def ident(self) -> str:
        """A short stable name: module, line, operator and a hash of the change."""
        h = hashlib.sha1(f"{self.module}\0{self.before}\0{self.after}".encode()).hexdigest()[:8]
        return f"{self.module}:{self.line}:{self.operator}:{h}"

    def diff(self, original: str) -> str:
        """Unified diff of the mutant against ``original`` (three lines of context)."""
        return "".join(difflib.unified_diff(
            original.splitlines(keepends=True), self.source.splitlines(keepends=True),
            fromfile=f"a/{self.module}", tofile=f"b/{self.module}", n=1))


# ----------------------------------------------------------------------------- source edits


class _Source:
    """The source text with (line, column-in-bytes) positions, as ``ast`` reports them."""

    def __init__(self, text: str):
        self.text = text
        self.lines = text.splitlines(keepends=True)
        self.blines = [ln.encode() for ln in self.lines]
        self.offsets = [0]
        for bl in self.blines:
            self.offsets.append(self.offsets[-1] + len(bl))
        self.data = text.encode()

    def pos(self, lineno: int, col: int) -> int:
        return self.offsets[lineno - 1] + col

    def start(self, node) -> int:
        return self.pos(node.lineno, node.col_offset)

    def end(self, node) -> int:
        return self.pos(node.end_lineno, node.end_col_offset)

    def seg(self, a: int, b: int) -> str:
        return self.data[a:b].decode()

    def text_of(self, node) -> str:
        return self.seg(self.start(node), self.end(node))

    def replace(self, a: int, b: int, new: str) -> str:
        return (self.data[:a] + new.encode() + self.data[b:]).decode()


def _wrap(src: _Source, node) -> str:
    """The node's source, parenthesised unless it is an atom."""
    t = src.text_of(node)
    return t if isinstance(node, _ATOMS) else f"({t})"


def _find_symbol(gap: str, symbol: str) -> int:
    """Index of the operator ``symbol`` in the text between two operands (-1 if absent).

    Skips comments; ``*`` never matches inside ``**`` nor ``/`` inside ``//``.
    """
    code = gap.split("#")[0] if "\n" not in gap else "\n".join(
        ln.split("#")[0] for ln in gap.split("\n"))
    i = 0
    while True:
        i = code.find(symbol, i)
        if i < 0:
            return -1
        if symbol in ("*", "/"):
            before = code[i - 1] if i else ""
            after = code[i + 1] if i + 1 < len(code) else ""
            if before == symbol or after == symbol:
                i += 1
                continue
        if symbol.isalpha() or " " in symbol:  # word operators: whole words only
            before = code[i - 1] if i else " "
            after = code[i + len(symbol)] if i + len(symbol) < len(code) else " "
            if before.isalnum() or before == "_" or after.isalnum() or after == "_":
                i += 1
                continue
        return i


# ----------------------------------------------------------------------------- the visitor


class _Collector(ast.NodeVisitor):
    def __init__(self, src: _Source, module: str):
        self.src = src
        self.module = module
        self.found: list[tuple[int, int, str, str, str]] = []  # (start, end, new, op, desc)
        self.skip_lines = {i + 1 for i, ln in enumerate(src.lines) if "pragma: no mutate" in ln}
        self.bound: list[set[str]] = []  # names bound so far in the enclosing functions

    # -- bookkeeping
    def add(self, a: int, b: int, new: str, op: str, desc: str, node) -> None:
        if node.lineno in self.skip_lines:
            return
        self.found.append((a, b, new, op, desc))

    def replace_node(self, node, new: str, op: str, desc: str) -> None:
        self.add(self.src.start(node), self.src.end(node), new, op, desc, node)

    # -- regions never mutated
    def visit_JoinedStr(self, node):  # f-strings: error messages
        return

    def visit_Import(self, node):
        return

    def visit_ImportFrom(self, node):
        return

    def visit_AnnAssign(self, node):
        if node.value is not None:
            self.visit(node.value)

    def visit_arg(self, node):  # annotations of arguments
        return

    def _visit_body(self, body):
        for i, stmt in enumerate(body):
            if (i == 0 and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
                    and isinstance(stmt.value.value, str)):
                continue  # docstring
            self.visit(stmt)

    def visit_Module(self, node):
        self._visit_body(node.body)

    def visit_ClassDef(self, node):
        for b in node.bases:
            self.visit(b)
        self._visit_body(node.body)

    def _visit_function(self, node):
        args = node.args
        for d in args.defaults + [d for d in args.kw_defaults if d is not None]:
            self.visit(d)
        names = {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs}
        if args.vararg:
            names.add(args.vararg.arg)
        if args.kwarg:
            names.add(args.kwarg.arg)
        self.bound.append(names)
        self._visit_body(node.body)
        self.bound.pop()

    visit_FunctionDef = _visit_function
    visit_AsyncFunctionDef = _visit_function

    def visit_Assign(self, node):
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return
        names = []
        for t in node.targets:
            elts = t.elts if isinstance(t, ast.Tuple) else [t]
            names.extend(e.id if isinstance(e, ast.Name) else None for e in elts)
        if self.bound and names and all(n is not None and n in self.bound[-1] for n in names):
            self.replace_node(node, "pass", "drop_statement",
                              f"drop the re-assignment of {', '.join(names)}")
        self.generic_visit(node)
        if self.bound:
            self.bound[-1].update(n for n in names if n)

    def visit_AugAssign(self, node):
        self.replace_node(node, "pass", "drop_statement", "drop the augmented assignment")
        self.generic_visit(node)

    def visit_For(self, node):
        if self.bound:
            for n in ast.walk(node.target):
                if isinstance(n, ast.Name):
                    self.bound[-1].add(n.id)
        self.generic_visit(node)

    def visit_With(self, node):
        if self.bound:
            for item in node.items:
                if item.optional_vars is not None:
                    for n in ast.walk(item.optional_vars):
                        if isinstance(n, ast.Name):
                            self.bound[-1].add(n.id)
        self.generic_visit(node)

    def visit_Expr(self, node):
        if isinstance(node.value, ast.Call):
            self.replace_node(node, "pass", "drop_statement",
                              f"drop the call {self.src.text_of(node.value.func)}(...)")
        self.generic_visit(node)

    # -- branches
    def visit_If(self, node):
        t = node.test
        if not (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING"):
            self.replace_node(t, "False", "skip_branch", "the branch is never taken")
        self.generic_visit(node)

    def visit_IfExp(self, node):
        self.replace_node(node, _wrap(self.src, node.orelse), "skip_branch",
                          "x if c else y -> y")
        self.replace_node(node, _wrap(self.src, node.body), "skip_branch",
                          "x if c else y -> x")
        self.generic_visit(node)

    # -- operators
    def visit_BinOp(self, node):
        src, op = self.src, type(node.op)
        sym = _BINOP_SYMBOL.get(op)
        ga, gb = src.end(node.left), src.start(node.right)
        gap = src.seg(ga, gb)
        i = _find_symbol(gap, sym) if sym else -1

        def op_to(new_sym, kind):
            if i >= 0:
                a = ga + len(gap[:i].encode())
                self.add(a, a + len(sym.encode()), new_sym, kind, f"a {sym} b -> a {new_sym} b",
                         node)

        if op is ast.Add:
            op_to("-", "sign_flip")
        elif op is ast.Sub:
            op_to("+", "sign_flip")
        elif op is ast.Mult:
            op_to("/", "arith_op")
        elif op is ast.Div:
            op_to("*", "arith_op")
        elif op is ast.Pow:
            op_to("*", "arith_op")
        left, right = _wrap(src, node.left), _wrap(src, node.right)
        if op in (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.MatMult):
            self.replace_node(node, left, "drop_term", f"a {sym} b -> a")
        if op in (ast.Add, ast.Mult):
            self.replace_node(node, right, "drop_term", f"a {sym} b -> b")
        if op in (ast.Sub, ast.Div, ast.MatMult):
            new = ast.unparse(ast.BinOp(node.right, node.op, node.left))
            self.replace_node(node, new, "swap_args", f"a {sym} b -> b {sym} a")
        self.generic_visit(node)

    def visit_UnaryOp(self, node):
        if isinstance(node.op, ast.USub) and not isinstance(node.operand, ast.Constant):
            self.replace_node(node, _wrap(self.src, node.operand), "sign_flip", "-x -> x")
        elif isinstance(node.op, ast.USub):
            v = node.operand.value
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                self.replace_node(node, repr(v), "sign_flip", "-c -> c")
            return
        elif isinstance(node.op, ast.Not):
            self.replace_node(node, _wrap(self.src, node.operand), "bool_op", "not x -> x")
        self.generic_visit(node)

    def visit_BoolOp(self, node):
        src = self.src
        word = "and" if isinstance(node.op, ast.And) else "or"
        other = "or" if word == "and" else "and"
        for left, right in zip(node.values, node.values[1:]):
            ga, gb = src.end(left), src.start(right)
            gap = src.seg(ga, gb)
            i = _find_symbol(gap, word)
            if i >= 0:
                a = ga + len(gap[:i].encode())
                self.add(a, a + len(word), other, "bool_op", f"a {word} b -> a {other} b", node)
        for k in range(len(node.values)):
            rest = [v for j, v in enumerate(node.values) if j != k]
            new = ast.unparse(rest[0]) if len(rest) == 1 else ast.unparse(
                ast.BoolOp(node.op, rest))
            self.replace_node(node, f"({new})", "bool_op", f"drop operand {k + 1} of '{word}'")
        self.generic_visit(node)

    def visit_Compare(self, node):
        src = self.src
        if len(node.ops) == 1:
            sym = _CMP_SYMBOL[type(node.ops[0])]
            ga, gb = src.end(node.left), src.start(node.comparators[0])
            gap = src.seg(ga, gb)
            first = sym.split()[0]
            i = _find_symbol(gap, sym if " " not in sym else first)
            if i >= 0:
                # the whole operator text (e.g. "not in", "is not") is replaced
                j = gap.find(sym.split()[-1], i) + len(sym.split()[-1])
                a, b = ga + len(gap[:i].encode()), ga + len(gap[:j].encode())
                for new in _CMP_MUTANTS[sym]:
                    self.add(a, b, new, "compare_flip", f"a {sym} b -> a {new} b", node)
        self.generic_visit(node)

    # -- constants
    def visit_Constant(self, node):
        v = node.value
        if isinstance(v, bool):
            self.replace_node(node, repr(not v), "constant", f"{v!r} -> {not v!r}")
        elif isinstance(v, int):
            self.replace_node(node, repr(v + 1), "constant", f"{v!r} -> {v + 1!r}")
        elif isinstance(v, float):
            new = 1.0 if v == 0 else v * 2
            self.replace_node(node, repr(new), "constant", f"{v!r} -> {new!r}")

    # -- calls, attributes, containers
    def visit_Call(self, node):
        src, func = self.src, node.func
        name = func.attr if isinstance(func, ast.Attribute) else (
            func.id if isinstance(func, ast.Name) else None)
        if name in _REDUCTIONS and isinstance(func, ast.Attribute):
            a = src.end(func) - len(name)
            self.add(a, src.end(func), _REDUCTIONS[name], "reduction_swap",
                     f"{name} -> {_REDUCTIONS[name]}", node)
        elif name in ("max", "min") and isinstance(func, ast.Name):
            self.replace_node(func, _REDUCTIONS[name], "reduction_swap",
                              f"{name} -> {_REDUCTIONS[name]}")
        if name in _TRANSPOSES:
            if isinstance(func, ast.Attribute) and not node.args and name == "transpose":
                self.replace_node(node, _wrap(src, func.value), "drop_transpose",
                                  "x.transpose() -> x")
            elif node.args:
                self.replace_node(node, _wrap(src, node.args[0]), "drop_transpose",
                                  f"{name}(x, ...) -> x")
        args = node.args
        if name not in _NO_SWAP and not any(isinstance(a, ast.Starred) for a in args):
            self._swap_adjacent(args, "swap_args", "swap arguments {} and {}")
        if name in ("isinstance", "issubclass"):  # (A, B) of types: order is irrelevant
            self.visit(func)
            self.visit(args[0]) if args else None
            return
        self.generic_visit(node)

    def _swap_adjacent(self, elts, op, desc):
        src = self.src
        for k, (a, b) in enumerate(zip(elts, elts[1:])):
            if any(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in (a, b)):
                continue
            ta, tb = src.text_of(a), src.text_of(b)
            if ta == tb:
                continue
            gap = src.seg(src.end(a), src.start(b))
            self.add(src.start(a), src.end(b), tb + gap + ta, op, desc.format(k + 1, k + 2), a)

    def visit_Tuple(self, node):
        if isinstance(node.ctx, ast.Load):
            self._swap_adjacent(node.elts, "swap_args", "swap elements {} and {}")
        self.generic_visit(node)

    visit_List = visit_Tuple

    def visit_Attribute(self, node):
        if node.attr in ("T", "mT") and isinstance(node.ctx, ast.Load):
            self.replace_node(node, _wrap(self.src, node.value), "drop_transpose",
                              f"x.{node.attr} -> x")
        self.generic_visit(node)

    def visit_Subscript(self, node):
        self.visit(node.value)
        self.visit(node.slice)

    def visit_Lambda(self, node):
        self.visit(node.body)


# ----------------------------------------------------------------------------- public API


def candidates(source: str, module: str) -> list[Mutant]:
    """Every mutant of ``source`` (the text of ``module``), in source order.

    Mutants that do not compile, or whose syntax tree equals the original's (a no-op), are
    left out; so are duplicates (two operators producing the same text).
    """
    src = _Source(source)
    tree = ast.parse(source)
    col = _Collector(src, module)
    col.visit(tree)
    original_dump = ast.dump(tree)
    seen = set()
    out = []
    for a, b, new, op, desc in sorted(col.found, key=lambda t: (t[0], t[1], t[3], t[2])):
        text = src.replace(a, b, new)
        if text in seen:
            continue
        seen.add(text)
        try:
            mutated = ast.parse(text)
            compile(mutated, module, "exec")
        except SyntaxError:
            continue
        if ast.dump(mutated) == original_dump:
            continue
        first = src.data[:a].count(b"\n")
        last_old = src.data[:b].count(b"\n")
        last_new = text.encode()[:a + len(new.encode())].count(b"\n")
        before = " / ".join(ln.strip() for ln in src.lines[first:last_old + 1])
        after = " / ".join(ln.strip() for ln in text.splitlines()[first:last_new + 1])
        out.append(Mutant(module, op, first + 1, desc, text, before, after))
    return out


def sample(mutants: list[Mutant], n: int, *, seed: int, module: str) -> list[Mutant]:
    """A seeded sample of ``n`` mutants, spread over the operators.

    Each operator's mutants are shuffled with ``random.Random(f"{seed}:{module}:{operator}")``;
    the sample takes one mutant per operator in turn (operators in a seeded order), so every
    kind present in the module is represented before any kind is drawn twice. Returned in
    source order.
    """
    by_op: dict[str, list[Mutant]] = {}
    for m in mutants:
        by_op.setdefault(m.operator, []).append(m)
    for op, ms in by_op.items():
        random.Random(f"{seed}:{module}:{op}").shuffle(ms)
    order = sorted(by_op)
    random.Random(f"{seed}:{module}").shuffle(order)
    picked: list[Mutant] = []
    while len(picked) < n and any(by_op[o] for o in order):
        for o in order:
            if by_op[o] and len(picked) < n:
                picked.append(by_op[o].pop(0))
    return sorted(picked, key=lambda m: (m.line, m.operator, m.after))

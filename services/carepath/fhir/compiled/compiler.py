"""Compile a FHIRPath expression (fhirpathpy's own parse tree) into Python closures, or refuse it.

The subset: member navigation (choice types and primitive extensions as fhirpathpy reads them), `%variables`,
`$this`/`$index`/`$total`, literals (string, number, boolean, `{}`, date/time, quantity), every infix operator
(`= != ~ !~ < > <= >= + - * / div mod & | and or xor implies in contains is as`), unary minus, indexers, the
lambda functions `where select exists all aggregate iif`, a whitelist of value functions, and the host
functions `resolve() now() today()`. Anything else raises `Unsupported`; the caller then lets fhirpathpy
evaluate the whole expression.

fhirpathpy keeps `$this`, `$index` and `$total` in one mutable context that a finished `where()` (or any lambda
function) leaves pointing at its last item. Compiled code scopes them lexically, so the compiler tracks where the
two could differ and refuses those expressions: `$this` (and any parameter evaluated on `$this`) right after a
lambda function with nothing resetting it in between, `$index`/`$total` in a lambda body that also runs another
lambda function setting them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from fhirpathpy.engine import type_specifier
from fhirpathpy.engine.evaluators import evaluators
from fhirpathpy.engine.util import is_capitalized

from carepath.fhir.compiled import functions as f
from carepath.fhir.compiled.functions import REGISTRY
from carepath.fhir.compiled.runtime import Fn, Frame, Items, Member, Path, Unsupported, node

_VALUE_FUNCTIONS = frozenset({
    "empty", "not", "exists", "count", "distinct", "isDistinct", "first", "last", "tail", "skip", "take", "single",
    "ofType", "is", "as", "union", "intersect", "combine", "exclude", "subsetOf", "supersetOf", "allTrue",
    "anyTrue", "allFalse", "anyFalse", "startsWith", "endsWith", "contains", "substring", "indexOf", "upper",
    "lower", "length", "matches", "replace", "toString", "toInteger", "toDecimal", "toBoolean", "trim", "split",
    "join", "abs", "ceiling", "floor", "extension",
})  # fmt: skip
_HOST_FUNCTIONS = {"resolve": "resolve", "now": "now", "today": "today"}
_INDEX_SETTERS = frozenset({"where", "select", "exists", "all", "aggregate"})
_OPERATOR_NODES = frozenset({
    "EqualityExpression", "InequalityExpression", "AdditiveExpression", "MultiplicativeExpression", "AndExpression",
    "OrExpression", "XorExpression", "ImpliesExpression", "UnionExpression", "MembershipExpression", "TypeExpression",
})  # fmt: skip
_ALIASES = {"in": "inOp", "contains": "containsOp", "is": "isOp", "as": "asOp"}
_FRESH_LITERALS = frozenset({"QuantityLiteral", "DateTimeLiteral", "TimeLiteral"})  # objects: one per evaluation
_CONSTANT_LITERALS = frozenset({"StringLiteral", "NumberLiteral", "BooleanLiteral", "NullLiteral"})
_IMMUTABLE = (str, int, Decimal, bool)
_UNSET, _CLEAN, _DIRTY = "unset", "clean", "dirty"  # fhirpathpy's `$this` relative to the lexical one


@dataclass
class _Scope:
    """A lambda body setting `$index` (or `$total`): read inside it, and set again by a nested function?"""

    reads: bool = False
    nested: bool = False


def _identifier(node: dict[str, Any]) -> str:
    return re.sub(r"(^\"|\"$)", "", node["text"])


def _focus_free(tree: dict[str, Any]) -> bool:
    """True when the value cannot depend on the focus it is evaluated on (literals, %variables, operators)."""
    kind = tree["type"]
    if kind in _CONSTANT_LITERALS or kind in _FRESH_LITERALS or kind == "ExternalConstantTerm":
        return True
    if kind == "InvocationExpression":
        return _focus_free(tree["children"][0])
    if kind in ("TermExpression", "LiteralTerm", "ParenthesizedTerm", "PolarityExpression"):
        return _focus_free(tree["children"][0])
    if kind in _OPERATOR_NODES or kind == "IndexerExpression":
        return all(_focus_free(child) for child in tree["children"] if child["type"] != "TypeSpecifier")
    return False


class Compiler:
    """One expression's compilation; `compile(tree)` returns the closure or raises Unsupported."""

    def __init__(self, model: dict[str, Any]) -> None:
        self.ctx: dict[str, Any] = {"model": model}
        self.model = model
        self.this_state = _UNSET
        self.focus_is_this = True
        self.index_scopes: list[_Scope] = []
        self.total_scopes: list[_Scope] = []
        self.constants: dict[Fn, Items] = {}
        self.paths: dict[Fn, tuple[Member, ...]] = {}  # closures that only navigate, to merge `a.b.c` into one
        self.walks: dict[Fn, Path] = {}

    def compile(self, tree: dict[str, Any]) -> Fn:
        children = tree.get("children") or []
        if len(children) != 1:
            raise Unsupported("empty expression")
        return self.expression(children[0])

    def expression(self, tree: dict[str, Any]) -> Fn:
        kind = tree["type"]
        if kind in ("TermExpression", "InvocationTerm", "ParenthesizedTerm", "LiteralTerm"):
            return self.expression(tree["children"][0])
        if kind in _CONSTANT_LITERALS:
            return self.constant(evaluators[kind](None, None, tree))
        if kind in _FRESH_LITERALS:
            literal = evaluators[kind]
            return lambda focus, frame: literal(None, None, tree)
        if kind in _OPERATOR_NODES:
            return self.operator(tree)
        if kind == "InvocationExpression":
            first = self.expression(tree["children"][0])
            return self.chain(first, self.expression(tree["children"][1]))
        handler = getattr(self, f"_{kind}", None)
        if handler is None:
            raise Unsupported(kind)
        result: Fn = handler(tree)
        return result

    def constant(self, values: Items) -> Fn:
        def run(focus: Items, frame: Frame) -> Items:
            return list(values)  # a fresh list: fhirpathpy's unary minus writes into its operand

        self.constants[run] = values
        return run

    def chain(self, first: Fn, then: Fn) -> Fn:
        if first in self.paths and then in self.paths:
            return self.path(self.paths[first] + self.paths[then])
        return lambda focus, frame: then(first(focus, frame), frame)

    def path(self, members: tuple[Member, ...]) -> Fn:
        walk = Path(members)

        def run(focus: Items, frame: Frame) -> Items:
            return walk(focus)

        self.paths[run], self.walks[run] = members, walk
        return run

    def _ExternalConstantTerm(self, tree: dict[str, Any]) -> Fn:
        name = _identifier(tree["children"][0]["children"][0]).replace("`", "")

        def run(focus: Items, frame: Frame) -> Items:
            value = frame.variables[name]  # unknown: KeyError, and fhirpathpy reports it
            if value is None:
                return []
            return value if isinstance(value, list) else [value]

        return run

    def _ThisInvocation(self, tree: dict[str, Any]) -> Fn:
        if self.this_state != _CLEAN:
            raise Unsupported("$this where fhirpathpy's $this may differ")
        return f.this

    def _IndexInvocation(self, tree: dict[str, Any]) -> Fn:
        return self._scoped_read(self.index_scopes, f.index)

    def _TotalInvocation(self, tree: dict[str, Any]) -> Fn:
        return self._scoped_read(self.total_scopes, f.total)

    @staticmethod
    def _scoped_read(scopes: list[_Scope], read: Fn) -> Fn:
        if not scopes:
            raise Unsupported("$index/$total outside a function setting it")
        scopes[-1].reads = True
        return read

    def _MemberInvocation(self, tree: dict[str, Any]) -> Fn:
        key = _identifier(tree["children"][0]).replace("`", "")
        member = Member(key, self.model)
        if not is_capitalized(key):  # type: ignore[no-untyped-call]
            return self.path((member,))
        walk = Path((member,))

        def typed(focus: Items, frame: Frame) -> Items:
            # `Patient.name`: plain resources of that type, as fhirpathpy's member_invocation filters them
            try:
                return [node(x, key) for x in focus if x["resourceType"] == key]
            except TypeError:
                return walk(focus)

        return typed

    def _IndexerExpression(self, tree: dict[str, Any]) -> Fn:
        collection, position = (self.expression(child) for child in tree["children"])

        def run(focus: Items, frame: Frame) -> Items:
            items, index = collection(focus, frame), position(focus, frame)
            if not index:
                return []
            i = int(index[0])
            return [items[i]] if 0 <= i < len(items) else []

        return run

    def _PolarityExpression(self, tree: dict[str, Any]) -> Fn:
        operand, negate = self.expression(tree["children"][0]), tree["terminalNodeText"][0] == "-"

        def run(focus: Items, frame: Frame) -> Items:
            result = operand(focus, frame)
            if len(result) != 1 or isinstance(result[0], bool) or not isinstance(result[0], int | Decimal):
                raise ValueError("Unary sign applies to a single number")
            return [-result[0]] if negate else list(result)

        return run

    def operator(self, tree: dict[str, Any]) -> Fn:
        op = "|" if tree["type"] == "UnionExpression" else tree["terminalNodeText"][0]
        name = _ALIASES.get(op, op) if tree["type"] in ("MembershipExpression", "TypeExpression") else op
        entry = REGISTRY.get(name)
        if entry is None or "fn" not in entry or len(tree["children"]) != 2:
            raise Unsupported(op)
        operands = [
            self.operand(child, arg_type) for child, arg_type in zip(tree["children"], entry["arity"][2], strict=True)
        ]
        left, right = operands
        literal = self.constants.get(right)
        if name == "=" and left in self.walks and literal and len(literal) == 1 and type(literal[0]) is str:
            fn = f.path_equals(self.walks[left], literal[0], self.ctx)
        elif name == "=":
            fn = f.equals(left, right, self.ctx)
        else:
            fn = f.operator(name, left, right, self.ctx)
        return self.fold(fn, operands)

    def operand(self, tree: dict[str, Any], arg_type: Any) -> Any:
        if arg_type == "TypeSpecifier":
            info = _type_info(tree)
            return lambda focus, frame: info
        if self.focus_is_this:
            self.this_state = _CLEAN  # make_param sets fhirpathpy's $this to the operator's focus
        return f.value_param(self.expression(tree), arg_type)

    def fold(self, fn: Fn, operands: list[Any]) -> Fn:
        """An operator over constants (`('a' | 'b')`) is computed once."""
        if not all(operand in self.constants for operand in operands):
            return fn
        values = fn([], Frame({}, [], _no_host, _no_host, _no_host, []))
        return self.constant(values) if all(isinstance(v, _IMMUTABLE) for v in values) else fn

    def _FunctionInvocation(self, tree: dict[str, Any]) -> Fn:
        functn = tree["children"][0]
        name = _identifier(functn["children"][0])
        params = functn["children"][1]["children"] if len(functn["children"]) > 1 else []
        if name in _HOST_FUNCTIONS and not params:
            return f.host(_HOST_GETTERS[name])
        if name in ("where", "select", "all", "aggregate", "iif") or (name == "exists" and params):
            return self.lambda_function(name, params)
        if name not in _VALUE_FUNCTIONS:
            raise Unsupported(name)
        return self.value_function(name, params)

    def value_function(self, name: str, params: list[dict[str, Any]]) -> Fn:
        entry = REGISTRY[name]
        if "arity" not in entry:
            if params:
                raise Unsupported(f"{name} takes no parameters")
            return f.invoke(name, [], self.ctx, REGISTRY)
        arg_types = entry["arity"].get(len(params))
        if arg_types is None or any(t in ("Expr", "Identifier") for t in arg_types):
            raise Unsupported(f"{name}/{len(params)}")
        compiled = [self.parameter(param, arg_type) for param, arg_type in zip(params, arg_types, strict=True)]
        if name == "ofType":
            return f.of_type(_type_info(params[0]))
        return f.invoke(name, compiled, self.ctx, REGISTRY)

    def parameter(self, tree: dict[str, Any], arg_type: Any) -> Any:
        """A non-lambda parameter: fhirpathpy evaluates it on its current `$this`, not on the function's input."""
        if arg_type == "TypeSpecifier":
            if "text" not in tree:
                raise Unsupported("type specifier")
            info = _type_info(tree)
            return lambda focus, frame: info
        if self.this_state == _DIRTY and not _focus_free(tree):
            raise Unsupported("parameter evaluated on a stale $this")
        outer = self.focus_is_this
        self.focus_is_this = self.this_state != _DIRTY
        try:
            compiled = self.expression(tree)
        finally:
            self.focus_is_this = outer
        if self.this_state == _UNSET:
            self.this_state = _CLEAN
        return compiled if arg_type == "AnyAtRoot" else f.value_param(compiled, arg_type)

    def lambda_function(self, name: str, params: list[dict[str, Any]]) -> Fn:
        arity = {"iif": (2, 3), "aggregate": (1, 2)}.get(name, (1,))
        if len(params) not in arity:
            raise Unsupported(f"{name}/{len(params)}")
        init = self.parameter(params[1], "Any") if name == "aggregate" and len(params) == 2 else None
        if name in _INDEX_SETTERS and self.index_scopes:
            self.index_scopes[-1].nested = True
        if name == "aggregate" and self.total_scopes:
            self.total_scopes[-1].nested = True
        if name == "iif":
            bodies = [self.body(param, None, None) for param in params]
            self.this_state = _DIRTY
            return f.iif(bodies[0], bodies[1], bodies[2] if len(bodies) == 3 else None)
        total = _Scope() if name == "aggregate" else None
        body = self.body(params[0], _Scope(), total)
        self.this_state = _DIRTY
        if name == "aggregate":
            return f.aggregate(body, init)
        return {"where": f.where, "select": f.select, "exists": f.exists, "all": f.all_}[name](body)

    def body(self, tree: dict[str, Any], index: _Scope | None, total: _Scope | None) -> Fn:
        """A lambda body: fhirpathpy sets `$this` to the item (to the input, for iif) before evaluating it."""
        outer = self.this_state, self.focus_is_this
        self.this_state, self.focus_is_this = _CLEAN, True
        for scopes, scope in ((self.index_scopes, index), (self.total_scopes, total)):
            if scope is not None:
                scopes.append(scope)
        try:
            compiled = self.expression(tree)
        finally:
            for scopes, scope in ((self.index_scopes, index), (self.total_scopes, total)):
                if scope is not None:
                    scopes.pop()
            self.this_state, self.focus_is_this = outer
        if any(scope is not None and scope.reads and scope.nested for scope in (index, total)):
            raise Unsupported("$index/$total read in a body that runs another function setting it")
        return compiled


def _type_info(tree: dict[str, Any]) -> Any:
    return type_specifier(None, None, tree)  # type: ignore[no-untyped-call]


def _no_host(items: Items) -> Items:
    raise Unsupported("host function in a constant")


_HOST_GETTERS = {
    "resolve": lambda frame: frame.resolve,
    "now": lambda frame: frame.now,
    "today": lambda frame: frame.today,
}


def compile_tree(tree: dict[str, Any], model: dict[str, Any]) -> Fn:
    """The closure for a parsed expression (`fhirpathpy.parser.parse`), or Unsupported."""
    return Compiler(model).compile(tree)

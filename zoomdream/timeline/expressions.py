"""Numbers that change per frame: `zoom = "1.15 + 0.5*beat"` in a preset.

An expression is parsed once, with simpleeval (a small evaluator over Python's own parser that
runs no Python code: names, numbers, arithmetic and the functions below, nothing else), and
evaluated once for every frame of the video at the same time, with each variable an array over
the frames. Every value is therefore known, and checked, before frame 0.

Variables: `t` (seconds), `n` (frame), `fps`, and with a soundtrack (`render --audio`) the
features that media/audio.py declares and computes, each 0..1: `beat`, `onset`, `rms`, `bass`,
`mid`, `treble`."""

from __future__ import annotations

import ast
import math
import operator as op
from collections.abc import Mapping

import numpy as np

from ..base.errors import UserError, closest, quoted
from ..media.audio import AUDIO_VARIABLES

TIME_VARIABLES = ("t", "n", "fps")
VARIABLES = (*TIME_VARIABLES, *AUDIO_VARIABLES)


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


# Elementwise, so that one evaluation over arrays gives every frame's value.
FUNCTIONS = {
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan,
    "atan2": np.arctan2, "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh, "exp": np.exp, "log": np.log,
    "log2": np.log2, "log10": np.log10, "sqrt": np.sqrt, "abs": np.abs, "floor": np.floor, "ceil": np.ceil,
    "round": np.round, "min": np.minimum, "max": np.maximum, "clip": np.clip, "where": np.where, "sign": np.sign,
    "smoothstep": _smoothstep, "mod": np.mod, "hypot": np.hypot,
}  # fmt: skip
# How many arguments a function that is not a numpy ufunc takes (a ufunc says so itself).
_ARGUMENTS = {"round": 1, "clip": 3, "where": 3, "smoothstep": 1}


def arity(name: str) -> int:
    """How many arguments FUNCTIONS[name] takes: numpy would read one more as the array to
    write into, so an expression must give exactly these."""
    return getattr(FUNCTIONS[name], "nin", None) or _ARGUMENTS[name]


CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}

_OPERATORS = {
    ast.Add: op.add, ast.Sub: op.sub, ast.Mult: op.mul, ast.Div: np.true_divide, ast.FloorDiv: np.floor_divide,
    ast.Mod: np.mod, ast.Pow: lambda a, b: np.power(np.asarray(a, np.float64), b), ast.USub: op.neg, ast.UAdd: op.pos,
    ast.Lt: np.less, ast.LtE: np.less_equal, ast.Gt: np.greater, ast.GtE: np.greater_equal,
    ast.Eq: np.equal, ast.NotEq: np.not_equal,
}  # fmt: skip
_ALLOWED = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Compare, ast.Call, ast.Name, ast.Load, ast.Constant,
            *_OPERATORS)


class Expr:
    """A parsed expression. Equal texts are equal expressions, and it prints (and hashes into
    a render's settings) as its text."""

    __slots__ = ("names", "text", "tree")

    def __init__(self, text: str, names: tuple[str, ...], tree: ast.expr):
        self.text, self.names, self.tree = text, names, tree

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Expr({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expr) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __deepcopy__(self, memo: dict) -> Expr:
        return self  # immutable

    @property
    def audio(self) -> bool:
        """Whether it reads the soundtrack."""
        return any(n in AUDIO_VARIABLES for n in self.names)

    def values(self, env: Mapping[str, np.ndarray], frames: int) -> np.ndarray:
        """Its value at every frame (float64, length `frames`)."""
        from simpleeval import SimpleEval  # only presets with expressions pay its import (8 ms)

        # Read-only views: no expression can write into the variables another one reads.
        names = {**CONSTANTS, **{k: _read_only(v) for k, v in env.items()}}
        ev = SimpleEval(operators=_OPERATORS, functions=FUNCTIONS, names=names)
        try:
            with np.errstate(all="ignore"):  # a NaN or inf is reported with its frame, below
                out = ev.eval(self.text, previously_parsed=self.tree)
            return np.broadcast_to(np.asarray(out, dtype=np.float64), (frames,))
        except OverflowError:  # integers multiplied past what a float holds
            raise UserError(f"the expression {quoted(self.text)} is too large for a float",
                            "write smaller numbers") from None


def _read_only(a: np.ndarray) -> np.ndarray:
    view = a.view()
    view.flags.writeable = False
    return view


# Past these an expression is a mistake, not a plan, and Python's parser and the evaluator
# recurse: 500,000 terms overflowed the parser's stack, 200,000 signs ran out of memory.
MAX_LENGTH, MAX_DEPTH = 2000, 200


def parse(text: str, where: str) -> Expr:
    """An expression, or a one-line error naming `where` it was written and what is wrong."""
    if len(text) > MAX_LENGTH:
        raise UserError(f"{where}: the expression {quoted(text)} is {len(text)} characters long, more than "
                        f"{MAX_LENGTH}", "write a shorter expression")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        col = f" at column {e.offset}" if e.offset else ""
        raise UserError(f"{where}: cannot read expression {quoted(text)} (syntax error{col})",
                        "write arithmetic on numbers, t, n and the audio names, e.g. \"1.1 + 0.5*beat\"") from None
    except (RecursionError, MemoryError):
        raise UserError(f"{where}: the expression {quoted(text)} nests too deeply",
                        f"nest at most {MAX_DEPTH} levels") from None
    if _depth(tree) > MAX_DEPTH:
        raise UserError(f"{where}: the expression {quoted(text)} nests more than {MAX_DEPTH} levels deep",
                        f"nest at most {MAX_DEPTH} levels (a long sum nests one level a term)")
    text = text.strip()
    names = []
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            what = type(node).__name__.lower()
            raise UserError(f"{where}: {quoted(text)} uses {_describe(node, what)}, which an expression cannot",
                            "use numbers, + - * / ** %, comparisons, variables and functions like sin(t)")
        if isinstance(node, ast.Constant) and (isinstance(node.value, bool) or not isinstance(node.value,
                                                                                              (int, float))):
            raise UserError(f"{where}: {quoted(text)} holds {node.value!r}, not a number", "write numbers only")
        if isinstance(node, ast.Constant) and isinstance(node.value, int) and abs(node.value) > 2**53:
            # Python's integers grow without end and float64 holds none past 1.8e308. Small ones
            # stay integers, as numpy divides them (1//0 is 0, -0 is 0); a large one is a float,
            # so that arithmetic on it overflows to inf, which is reported with its frame.
            try:
                node.value = float(node.value)
            except OverflowError:
                raise UserError(f"{where}: {quoted(text)} holds a number too large for a float ({len(str(node.value))} "
                                "digits)", "write numbers below 1e308") from None
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                what = _describe(node.func, type(node.func).__name__.lower())
                raise UserError(f"{where}: {quoted(text)} calls through {what}, which an expression cannot",
                                "call the functions by name, e.g. sin(t)")
            if node.func.id not in FUNCTIONS:
                raise UserError(f"{where}: unknown function {node.func.id}() in {quoted(text)}",
                                closest(node.func.id, FUNCTIONS))
            n = arity(node.func.id)
            if len(node.args) != n or node.keywords:
                args = {"clip": "x, low, high", "where": "condition, a, b", "atan2": "y, x"}.get(node.func.id)
                raise UserError(f"{where}: {node.func.id}() takes {n} argument{'s' if n > 1 else ''} in {quoted(text)}",
                                f"write {node.func.id}({args or ', '.join(('x', 'y')[:n])})")
        elif isinstance(node, ast.Compare) and len(node.ops) > 1:
            raise UserError(f"{where}: {quoted(text)} chains comparisons", "compare two things at a time")
        elif isinstance(node, ast.Name) and node.id not in CONSTANTS and id(node) not in called:
            if node.id in FUNCTIONS:
                raise UserError(f"{where}: {node.id} in {quoted(text)} is a function", f"call it, e.g. {node.id}(t)")
            if node.id not in VARIABLES:
                raise UserError(f"{where}: unknown name '{node.id}' in {quoted(text)}",
                                closest(node.id, [*VARIABLES, *CONSTANTS]))
            names.append(node.id)
    return Expr(text, tuple(sorted(set(names))), tree.body)


def _depth(tree: ast.AST) -> int:
    """How deeply the tree nests, found without recursing (the evaluator recurses)."""
    deepest, todo = 0, [(tree, 1)]
    while todo:
        node, d = todo.pop()
        deepest = max(deepest, d)
        todo.extend((child, d + 1) for child in ast.iter_child_nodes(node))
    return deepest


def _describe(node: ast.AST, what: str) -> str:
    return {"attribute": "attribute access", "subscript": "indexing", "lambda": "a lambda",
            "ifexp": "if/else (use where(cond, a, b))", "boolop": "and/or", "list": "a list", "tuple": "a tuple",
            "dict": "a dict", "joinedstr": "a string", "listcomp": "a comprehension"}.get(what, f"'{what}'")


def frame_variables(frames: int, fps: float, audio: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """The variables of every frame: t, n and fps, and the soundtrack's features if any."""
    n = np.arange(frames, dtype=np.float64)
    return {"t": n / fps, "n": n, "fps": np.full(frames, float(fps)), **(dict(audio) if audio else {})}

"""The dream, one aten operation at a time, for three questions a stopwatch cannot answer:

    repeats     which operation gives other bits when run again on the same inputs, and where
                two runs of the same code first part ways (a determinism bisect)
    traffic     how many bytes each operation reads and writes: a dream step's memory traffic,
                and from it the time a GPU's bandwidth allows at best
    round trips where a frame waits for the device: every read of a device number or copy to
                the host, with the line of zoomdream that asked for it

Each is a TorchDispatchMode, so it sees forward and backward alike, on any device, with no
change to the code under it. On the CPU they check themselves (the CPU repeats bit for bit);
bench/gpu.py runs them on CUDA."""

from __future__ import annotations

import hashlib
import os
import traceback
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

PACKAGE = os.path.realpath(Path(__file__).resolve().parents[1] / "zoomdream")
# Ops whose output is meant to differ run to run (random draws advance their generator) or is
# uninitialised memory: not findings.
UNREPEATABLE = ("rand", "normal", "bernoulli", "uniform", "exponential", "empty", "dropout")


def tensors(tree: object) -> list[torch.Tensor]:
    return [t for t in tree_flatten(tree)[0] if isinstance(t, torch.Tensor)]


def bits(t: torch.Tensor) -> torch.Tensor:
    """The tensor's values as bytes (NaN equals NaN, -0 differs from 0): what "identical" means."""
    return t.detach().contiguous().reshape(-1).view(torch.uint8)


def digest(t: torch.Tensor) -> str:
    return hashlib.sha256(bits(t).cpu().numpy().tobytes()).hexdigest()[:16]


def max_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.shape != b.shape:
        return float("inf")
    if not (a.is_floating_point() or a.is_complex()):
        return float((a.long() - b.long()).abs().max()) if a.numel() else 0.0
    return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0


# Ops that return the same memory under another shape without saying so in their schema.
UNDECLARED_VIEWS = ("aten::_unsafe_view", "aten::_reshape_alias", "aten::lift_fresh")


def is_view(func: torch._ops.OpOverload) -> bool:
    """Returns an alias of an input without writing it (view, permute, detach…): moves no data."""
    return func.name() in UNDECLARED_VIEWS or \
        any(r.alias_info is not None and not r.alias_info.is_write for r in func._schema.returns)


def describe(func: torch._ops.OpOverload, args: tuple, kwargs: dict) -> str:
    """The op, its tensors' shapes and dtypes and its other arguments (a conv's groups say which
    kind it is), in one short line."""
    def one(a: object) -> str:
        if isinstance(a, torch.Tensor):
            cl = ", cl" if a.dim() == 4 and a.is_contiguous(memory_format=torch.channels_last) \
                and not a.is_contiguous() else ""
            return f"{str(a.dtype).removeprefix('torch.')}{list(a.shape)}{cl}"
        if isinstance(a, (list, tuple)) and any(isinstance(x, torch.Tensor) for x in a):
            return "[" + ", ".join(one(x) for x in a) + "]"
        return repr(a)
    parts = [one(a) for a in args] + [f"{k}={one(v)}" for k, v in kwargs.items()]
    line = f"{func.name().removeprefix('aten::')}({', '.join(parts)})"
    return line if len(line) <= 160 else line[:157] + "..."


def autograd_node() -> str:
    """The backward node running now ("ConvolutionBackward0"), or "" in the forward pass."""
    node = torch._C._current_autograd_node()
    return node.name() if node is not None else ""


def caller() -> str:
    """The innermost line of zoomdream on the stack (file:line function), or "" outside it."""
    for frame in reversed(traceback.extract_stack()[:-2]):
        path = os.path.realpath(frame.filename)  # the checkout may sit under a symlink
        if path.startswith(PACKAGE):
            return f"{Path(path).relative_to(Path(PACKAGE).parent)}:{frame.lineno} {frame.name}"
    return ""


# ---------------------------------------------------------------------------------- repeats

@dataclass
class Call:
    op: str
    node: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass
class Finding:
    op: str
    node: str
    difference: float  # largest |a − b| over its outputs
    where: str  # the line of zoomdream that ran it ("" in the backward pass)


class Repeats(TorchDispatchMode):
    """Runs every operation twice on the same inputs (mutated ones cloned first) and keeps the
    ones whose outputs differ in any bit; with `record`, also each op's input and output
    digests, for `parting` to compare two whole runs."""

    def __init__(self, record: bool = False):
        super().__init__()
        self.record, self.calls, self.findings, self.ops = record, [], [], 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.name()
        inputs = tuple(digest(t) for t in tensors((args, kwargs))) if self.record else ()
        if any(w in name for w in UNREPEATABLE) or func is torch.ops.aten._local_scalar_dense.default:
            out = func(*args, **kwargs)
        else:
            args2, kwargs2 = _clones(args, kwargs) if written(func, args, kwargs) else (args, kwargs)
            out = func(*args, **kwargs)
            again = func(*args2, **kwargs2)
            a = tensors((out, written(func, args, kwargs)))
            b = tensors((again, written(func, args2, kwargs2)))
            if any(not torch.equal(bits(x), bits(y)) for x, y in zip(a, b)):
                diff = max(max_difference(x, y) for x, y in zip(a, b))
                self.findings.append(Finding(describe(func, args, kwargs), autograd_node(), diff, caller()))
        if self.record:
            self.calls.append(Call(describe(func, args, kwargs), autograd_node(), inputs,
                                   tuple(digest(t) for t in tensors(out))))
        self.ops += 1
        return out


def _clones(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """Copies of an op's tensor arguments for a second run, so that both runs see the inputs as
    they were; one copy per tensor, so x.add_(x) stays one tensor twice."""
    copies: dict[int, torch.Tensor] = {}

    def one(x: object) -> object:
        if not isinstance(x, torch.Tensor):
            return x
        if id(x) not in copies:
            copies[id(x)] = x.clone()
        return copies[id(x)]

    return tree_map(one, (args, kwargs))


def written(func: torch._ops.OpOverload, args: tuple, kwargs: dict) -> list[object]:
    """The arguments an op writes (its schema's Tensor(a!)): with its outputs, what it changes."""
    out = []
    for i, a in enumerate(func._schema.arguments):
        if a.alias_info is not None and a.alias_info.is_write:
            out.append(args[i] if i < len(args) else kwargs.get(a.name))
    return out


def parting(a: list[Call], b: list[Call]) -> list[str]:
    """Where two recorded runs of the same code part ways: the first op whose inputs were the
    same and outputs were not (the culprit), or whose inputs already differed (the difference
    came from outside what was recorded), or where the runs took different ops."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x.op != y.op:
            return [f"op {i}: the runs took different operations: {x.op} / {y.op}"]
        if x.inputs != y.inputs:
            return [f"op {i}: {x.op} {x.node}: its inputs already differed (from outside the run)"]
        if x.outputs != y.outputs:
            return [f"op {i}: {x.op} {x.node}: same inputs, other outputs"]
    if len(a) != len(b):
        return [f"the runs ran {len(a)} and {len(b)} operations"]
    return []


# ---------------------------------------------------------------------------------- traffic

def nbytes(t: torch.Tensor) -> int:
    """Bytes an operation touches reading or writing t: its elements, or its storage where it is
    a broadcast (stride 0) of fewer."""
    return min(t.numel() * t.element_size(), t.untyped_storage().nbytes())


class Traffic(TorchDispatchMode):
    """Bytes read and written, op by op, as eager kernels move them: each op reads its tensor
    inputs once and writes its outputs once (views move nothing). Fused kernels would move
    less, caches can hide some: this is what unfused execution (eager, or a CUDA graph of it)
    must move through the GPU's memory, within a few per cent."""

    def __init__(self) -> None:
        super().__init__()
        self.by_op: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if not is_view(func):
            seen: set[tuple[int, int]] = set()
            moved = 0
            for t in tensors(_read(func, args, kwargs)):
                key = (t.untyped_storage().data_ptr(), t.storage_offset())
                if key not in seen:  # x * x reads x once
                    seen.add(key)
                    moved += nbytes(t)
            moved += sum(nbytes(t) for t in tensors(out))
            name = func.name().removeprefix("aten::")
            self.by_op[name] += moved
            self.calls[name] += 1
        return out

    @property
    def total(self) -> int:
        return sum(self.by_op.values())


def _read(func: torch._ops.OpOverload, args: tuple, kwargs: dict) -> tuple:
    """The arguments an op reads. A convolution's backward for the input's gradient alone
    (frozen weights: the dream's case) is given the input for its shape only; copy_ only
    writes its destination."""
    if func is torch.ops.aten.convolution_backward.default and not args[10][1]:
        return (args[0], args[2]), kwargs
    if func.name() == "aten::copy_":  # writes its destination without reading it
        return args[1:], kwargs
    return args, kwargs


# ------------------------------------------------------------------------------ round trips

@dataclass(frozen=True)
class Trip:
    where: str  # the line of zoomdream that asked
    what: str  # "item" (a number read) or "copy to cpu"
    device: str  # where the tensor lived


class RoundTrips(TorchDispatchMode):
    """Every read of a tensor's number (float(t), t.item(), t.tolist()) and every copy to the
    host, by the line of zoomdream that asked. On a GPU each waits for the queue to drain; on
    the CPU they cost nothing, so there the list says what a GPU would wait on (device "cpu"
    entries that read a CPU generator's draws cost nothing anywhere)."""

    def __init__(self) -> None:
        super().__init__()
        self.trips: Counter[Trip] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.ops.aten._local_scalar_dense.default:
            self.trips[Trip(caller(), "item", str(args[0].device))] += 1
        elif func.name() in ("aten::_to_copy", "aten::copy_"):
            src = args[1] if func.name() == "aten::copy_" else args[0]
            dst = args[0].device if func.name() == "aten::copy_" else kwargs.get("device") or src.device
            if torch.device(dst).type == "cpu" and src.device.type != "cpu":
                self.trips[Trip(caller(), "copy to cpu", str(src.device))] += 1
        return func(*args, **kwargs)


def table(trips: Iterable[tuple[Trip, int]], per: int, label: str) -> list[str]:
    rows = [f"| where ({label}) | what | tensor on | per frame |", "|---|---|---|---|"]
    for trip, n in sorted(trips, key=lambda kv: (-kv[1], kv[0].where)):
        rows.append(f"| {trip.where or '(outside zoomdream)'} | {trip.what} | {trip.device} | {n / per:g} |")
    return rows

"""What one render of a template may cost: time, and the size of everything it makes.

An override template (``LOKET_TEMPLATE_DIR``) is code the operator's folder supplies, and
Jinja2's sandbox stops it from reaching into the product but not from working for ever or
filling the memory: ``{{ "x"|center(1500000000) }}``, ``"%s"|format`` with a huge width, string
``*``, nested ``range`` loops, a macro that calls itself twice. A render that would go past a
bound stops with :class:`RenderLimit`, which the renderer reports as a configuration error
naming the template; the messages it was for stay in the outbox.

The bounds are enforced where the work happens, never by tracing:

- **size**: every value a template makes (a filter's or a method's result, ``*``, ``+``,
  ``%``, ``~``) is at most :data:`MAX_SIZE` characters (or items), and so is everything a
  render outputs, counted at every ``{{ ... }}`` (also inside ``{% set %}`` blocks and macros,
  whose output Jinja keeps until they end) and at every join of output. Operations whose result size follows from their
  arguments (``center``, ``indent``, ``format``, ``wordwrap``, ``replace``, ``join``,
  ``batch``...) are checked *before* they run, so the memory is never taken;
- **time**: a deadline of :data:`MAX_SECONDS` per render, checked at every pass of every
  ``for`` loop (the compiler is told to put a check at the top of each loop body), every call
  (macros included, so recursion is covered) and every filter and operator. Between two checks
  only one bounded operation runs.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import re
import string
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any, Final

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import TemplateRuntimeError
from jinja2.runtime import markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment

#: Characters (or items) in any one value a template makes, and in what one render produces.
MAX_SIZE: Final = 1_000_000
#: Seconds one render of one template may take.
MAX_SECONDS: Final = 2.0
#: The largest exponent of ``**``, and the largest integer (in bits) ``*`` and ``**`` may make:
#: Python prints integers of up to 4,300 digits, some 14,000 bits.
MAX_EXPONENT: Final = 1_000
MAX_INT_BITS: Final = 16_384


class RenderLimit(TemplateRuntimeError):
    """A render went past one of the bounds of this module."""


class _Budget:
    """What the render under way has left: time, and characters to output."""

    def __init__(self, seconds: float) -> None:
        self.ends = time.monotonic() + seconds
        self.output = 0


_budget: ContextVar[_Budget | None] = ContextVar("render_budget", default=None)


@contextlib.contextmanager
def bounded(seconds: float = MAX_SECONDS) -> Iterator[None]:
    """Bound the render inside the block: `seconds` in all, MAX_SIZE characters output."""
    token = _budget.set(_Budget(seconds))
    try:
        yield
    finally:
        _budget.reset(token)


def tick() -> None:
    """Stop the render once its time is up (free of cost outside a render)."""
    budget = _budget.get()
    if budget is not None and time.monotonic() > budget.ends:
        raise RenderLimit(f"rendering took longer than {MAX_SECONDS:g} seconds")


def _output(size: int) -> None:
    """Count `size` characters output, anywhere in the render."""
    budget = _budget.get()
    if budget is not None:
        budget.output += size
        limit(budget.output, "the render's output")


def weight(value: Any, limit: int = MAX_SIZE) -> int:
    """About how many characters `value` becomes as text, counting each item of a container
    (shared items as often as they occur, as printing them would); stops counting past `limit`.
    Walked with a stack, not recursion: a value may nest deeply."""
    if isinstance(value, str):  # by far the most common, on every output
        return len(value)
    total, stack = 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, bool) or item is None:
            total += 1
        elif isinstance(item, int):
            total += 1 + item.bit_length() // 3
        elif isinstance(item, Mapping):
            total += 1
            for key, entry in item.items():
                stack += (key, entry)
                if len(stack) > limit:
                    break
        elif isinstance(item, list | tuple | set | frozenset):
            total += 1
            stack.extend(item)
        else:
            total += 1
    return total


def limit(size: int, what: str) -> None:
    """Refuse a result of `size` characters or items."""
    if size > MAX_SIZE:
        raise RenderLimit(f"{what} would make {size} characters or items; the limit is {MAX_SIZE}")


def _bounded_list(items: Iterable[Any], what: str) -> list[Any]:
    """The items of an iterator, taken one by one until they weigh more than MAX_SIZE."""
    kept: list[Any] = []
    total = 0
    for item in items:
        tick()
        total += weight(item)
        limit(total, what)
        kept.append(item)
    return kept


def _number(value: Any) -> int:
    return value if isinstance(value, int) else 0


# -- what a filter, method or format would make, before it runs ------------------------------

_PRINTF: Final = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def printf_size(template: str, values: Any) -> int:
    """Characters ``template % values`` makes at most (widths and precisions included)."""
    size = len(template) + weight(values)
    for width, precision in _PRINTF.findall(template):
        if "*" in (width, precision):
            raise RenderLimit("a width or precision taken from the values ('*') is not allowed")
        size += int(width or 0) + int(precision or 0)
    return size


def format_size(template: str, args: Any, kwargs: Any) -> int:
    """Characters ``template.format(...)`` makes at most; nested replacement fields in a format
    spec (``{:{width}}``) are refused, so every width is written in the template."""
    size = len(template) + weight(args) + weight(kwargs)
    for _text, _field, spec, _conversion in string.Formatter().parse(template):
        if spec and "{" in spec:
            raise RenderLimit("a format spec taken from the values ('{:{...}}') is not allowed")
        size += sum(int(number) for number in re.findall(r"\d+", spec or ""))
    return size


def _lines(text: Any) -> int:
    return str(text).count("\n") + 1


def _wrap_size(a: Mapping[str, Any]) -> int:
    size = weight(a["s"])
    width = max(_number(a["width"]), 1)
    breaks = 2 * size // width + _lines(a["s"])
    return size + breaks * len(a["wrapstring"] or "\n")


def _replace_size(s: Any, old: Any, new: Any, count: Any) -> int:
    size = weight(s)
    times = size + 1 if not old else size // len(str(old)) + 1
    if isinstance(count, int) and count >= 0:
        times = min(times, count)
    return size + times * len(str(new))


def _sum_size(a: Mapping[str, Any]) -> int:
    if not isinstance(a["start"], int | float):  # adding lists or strings is quadratic
        raise RenderLimit("the filter sum adds numbers only")
    return weight(a["iterable"])


def _not_available(name: str) -> Callable[..., int]:
    def refuse(*_args: Any, **_kwargs: Any) -> int:
        raise RenderLimit(f"{name} is not available in templates")
    return refuse


#: Per filter: the size of its result, from its arguments (by the filter's parameter names).
#: The others are checked on the size of their input and of their result.
FILTER_SIZES: Final[dict[str, Callable[[Mapping[str, Any]], int]]] = {
    "center": lambda a: max(weight(a["value"]), _number(a["width"])),
    "indent": lambda a: weight(a["s"]) + _lines(a["s"]) * (
        len(a["width"]) if isinstance(a["width"], str) else _number(a["width"])),
    "format": lambda a: printf_size(str(a["value"]), a["kwargs"] or a["args"]),
    "wordwrap": _wrap_size,
    "truncate": lambda a: weight(a["s"]) + len(str(a["end"])),
    "replace": lambda a: _replace_size(a["s"], a["old"], a["new"], a["count"]),
    "join": lambda a: weight(a["value"]) + len(a["value"]) * len(str(a["d"])),
    "batch": lambda a: weight(a["value"]) + (_number(a["linecount"]) if a["fill_with"] is not None else 0),
    "slice": lambda a: weight(a["value"]) + _number(a["slices"]),
    "urlize": lambda a: 3 * weight(a["value"]) + len(str(a["value"]).split()) * (
        len(a["target"] or "") + len(a["rel"] or "")),
    "tojson": lambda a: weight(a["value"]) * (1 + min(_number(a["indent"]), 1000)),
    "sum": _sum_size,
}

#: Per method of a string or a number: the size of its result, from the object and arguments.
METHOD_SIZES: Final[dict[str, Callable[..., int]]] = {
    "center": lambda s, width, *_: max(len(s), _number(width)),
    "ljust": lambda s, width, *_: max(len(s), _number(width)),
    "rjust": lambda s, width, *_: max(len(s), _number(width)),
    "zfill": lambda s, width: max(len(s), _number(width)),
    "expandtabs": lambda s, tabsize=8: len(s) + s.count("\t") * _number(tabsize),
    "replace": lambda s, old, new, count=-1: _replace_size(s, old, new, count),
    "join": lambda s, items: weight(items) + len(items) * len(s),
    "encode": lambda s, *_args, **_kwargs: 4 * len(s),
    "to_bytes": lambda _n, length=1, *_args, **_kwargs: _number(length),
    "translate": _not_available("str.translate"),
    "maketrans": _not_available("str.maketrans"),
}


#: The names Jinja's own filters give the argument it passes first (``pass_context`` ...).
_PASSED_NAMES: Final = frozenset({"context", "eval_ctx", "environment", "env"})


def _signature(function: Callable[..., Any], passed: int) -> inspect.Signature | None:
    """The parameters of a filter as a template gives them: without the one Jinja passes first.
    (Some filters are wrapped so that the wrapper takes it and the signature shown does not.)"""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # a C function, such as markupsafe's escape
        return None
    parameters = list(signature.parameters.values())
    if passed and parameters and parameters[0].name in _PASSED_NAMES:
        parameters = parameters[1:]
    return signature.replace(parameters=parameters) if parameters else None


def bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """`function` (the filter `name`) checked against the bounds: an iterator it is given is
    taken item by item within MAX_SIZE; what it would make is estimated first where
    FILTER_SIZES knows how; its result is measured after."""
    passed = 1 if getattr(function, "jinja_pass_arg", None) is not None else 0
    signature = _signature(function, passed)
    estimate = FILTER_SIZES.get(name)
    what = f"the filter {name}"

    @functools.wraps(function)
    def checked(*args: Any, **kwargs: Any) -> Any:
        tick()
        head, given = args[:passed], args[passed:]
        if signature is None:
            given = tuple(_bounded_list(a, what) if isinstance(a, Iterator) else a for a in given)
            limit(weight(given) + weight(kwargs), what)
            return _checked_result(function(*head, *given, **kwargs), what)
        bound = signature.bind(*given, **kwargs)
        bound.apply_defaults()
        first = next(iter(signature.parameters))
        if isinstance(bound.arguments.get(first), Iterator):
            bound.arguments[first] = _bounded_list(bound.arguments[first], what)
        limit(weight(bound.arguments.get(first)), what)  # first: an estimate may turn it into text
        if estimate is not None:
            limit(estimate(bound.arguments), what)
        return _checked_result(function(*head, *bound.args, **bound.kwargs), what)

    return checked


def _checked_result(result: Any, what: str) -> Any:
    if isinstance(result, str | bytes | list | tuple | Mapping):
        limit(weight(result), what)
    return result


# -- the environment ------------------------------------------------------------------------


class _CodeGenerator(CodeGenerator):
    """Jinja's compiler, with a deadline check at the top of every loop body and ``~`` made
    through :meth:`BoundedSandbox.joined`."""

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        check = nodes.ExprStmt(nodes.Call(nodes.EnvironmentAttribute("loop_pass"), [], [], None, None),
                               lineno=node.lineno)
        check.set_lineno(node.lineno)
        check.set_environment(self.environment)
        node.body = [check, *node.body]
        super().visit_For(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        markup = frame.eval_ctx.volatile or frame.eval_ctx.autoescape
        self.write("environment.joined((")
        for part in node.nodes:
            self.visit(part, frame)
            self.write(", ")
        self.write(f"), {markup})")


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, within the bounds of this module."""

    code_generator_class = _CodeGenerator
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, finalize=self._finalize, **kwargs)
        self.globals.pop("lipsum", None)  # lorem ipsum of any length: nothing an email needs
        self.filters = {name: bounded_filter(name, function) for name, function in self.filters.items()}

    @staticmethod
    def loop_pass() -> None:
        """Called at the top of every loop body; the check is in :meth:`call`."""

    @staticmethod
    def _finalize(value: Any) -> Any:
        """Every ``{{ value }}``, also inside a captured block or a macro whose output is
        kept in a list until its end: counted before it becomes text, against the render's
        total, so that what piles up there stays within MAX_SIZE as well."""
        _output(weight(value))
        return value

    def concat(self, pieces: Iterable[str]) -> str:
        """How Jinja joins what a render (or a captured block, a macro) outputs: counted as it
        comes, so that a loop of output is stopped before the join takes the memory."""
        kept: list[str] = []
        total = 0
        for piece in pieces:
            total += len(piece)
            if total > MAX_SIZE:
                limit(total, "the rendered text")
            kept.append(piece)
        return "".join(kept)

    @staticmethod
    def joined(parts: tuple[Any, ...], markup: bool) -> str:
        """``a ~ b``: measured before it is made."""
        tick()
        limit(sum(weight(part) for part in parts), "'~'")
        return markup_join(parts) if markup else str_join(parts)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        tick()
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        if isinstance(owner, str | bytes | int) and name in METHOD_SIZES:
            what = f"{type(owner).__name__}.{name}"
            if name == "join" and args and isinstance(args[0], Iterator):
                args = (_bounded_list(args[0], what), *args[1:])
            try:
                size = METHOD_SIZES[name](owner, *args, **kwargs)
            except TypeError:
                size = 0  # wrong arguments: the call itself says what is wrong
            limit(size, what)
        return _checked_result(super().call(__context, __obj, *args, **kwargs), "a call")

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        template = value.__self__

        @functools.wraps(wrapped)
        def checked(*args: Any, **kwargs: Any) -> str:
            limit(format_size(template, args, kwargs), "str.format")
            return wrapped(*args, **kwargs)

        return checked

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        tick()
        if operator_ == "**" and isinstance(right, int):
            if abs(right) > MAX_EXPONENT:
                raise RenderLimit(f"exponent {right} is larger than {MAX_EXPONENT}")
            if isinstance(left, int) and left.bit_length() * right > MAX_INT_BITS:
                raise RenderLimit(f"the power would have more than {MAX_INT_BITS} bits")
        elif operator_ == "*":
            if isinstance(left, int) and isinstance(right, int):
                if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                    raise RenderLimit(f"the product would have more than {MAX_INT_BITS} bits")
            else:
                for seq, count in ((left, right), (right, left)):
                    if isinstance(seq, str | list | tuple) and isinstance(count, int):
                        limit(weight(seq) * count, "'*'")
        elif operator_ == "+" and not isinstance(left, int | float):
            limit(weight(left) + weight(right), "'+'")
        elif operator_ == "%" and isinstance(left, str):
            limit(printf_size(left, right), "'%'")
        return self.binop_table[operator_](left, right)


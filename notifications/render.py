"""Rendering notification emails from Jinja2 templates, sandboxed.

A deployment may override any template from a folder (``LOKET_TEMPLATE_DIR``), so templates
are treated as semi-trusted code and resident-typed data as hostile: rendering happens in an
immutable sandbox bounded in time and size (:mod:`notifications.bounds`), HTML is
autoescaped, a typo'd variable fails instead of printing nothing, and the subject is forced
onto one line so nothing can add a header. An override (or a partial it includes) is read only
from inside its folder: a symbolic link that leads out of it is refused, so a template cannot
mail out another file's contents. Every failure that comes from a template is a
:class:`~engine.errors.ConfigurationError` naming the file (and the line where Jinja knows
it), because fixing it is the job of whoever maintains the override folder.

What a template is given is plain data the engine prepared down to its words
(:mod:`notifications.wording`), with the keys :mod:`notifications.context` lists per kind.
"""

from __future__ import annotations

import functools
import os
import re
import stat
import traceback
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    select_autoescape,
)
from jinja2.loaders import split_template_path

from engine.core.vocabulary import MailKind
from engine.errors import ConfigurationError, InvalidValue
from notifications import bounds
from notifications.context import (
    DIGEST,
    DIGEST_CASE_KEYS,
    DIGEST_FIRING_KEYS,
    EVENT_KEYS,
    KINDS,
    REQUIRED_KEYS,
    TEMPLATE_KINDS,
    EmailContext,
    sample_contexts,
)
from notifications.wording import LANGUAGES, READERS, check_language

PARTS: Final = ("subject", "txt", "html")

#: Override files larger than this are refused: a template is a page of text, not a payload.
MAX_TEMPLATE_BYTES: Final = 64 * 1024


@dataclass(frozen=True)
class RenderedEmail:
    """A rendered email: one-line subject, plain-text body and HTML body."""

    subject: str
    text: str
    html: str


def template_name(kind: str, language: str, part: str) -> str:
    """The file name of one template: ``{kind}.{language}.{part}.j2``."""
    return f"{kind}.{language}.{part}.j2"


KNOWN_TEMPLATES: Final = frozenset(
    template_name(kind, language, part)
    for kind in TEMPLATE_KINDS
    for language in LANGUAGES
    for part in PARTS
)


class _OverrideLoader(FileSystemLoader):
    """Loads override templates from one folder: only files that are inside it once every
    symbolic link is resolved, regular files, and at most :data:`MAX_TEMPLATE_BYTES`.

    A name the folder does not hold falls through to the bundled templates; a name it holds
    but that cannot be used (a link out of the folder, a dangling link, a FIFO that would block
    the read) is an error, never a silent fallback.
    """

    def get_source(self, environment: Any, template: str) -> tuple[str, str, Callable[[], bool]]:
        folder = self.searchpath[0]
        path = os.path.join(folder, *split_template_path(template))
        if not os.path.lexists(path):
            raise TemplateNotFound(template)
        real = os.path.realpath(path)
        if os.path.commonpath([os.path.realpath(folder), real]) != os.path.realpath(folder):
            raise ConfigurationError(f"template {path} leads outside the template folder (to {real})")
        try:
            info = os.stat(real)
            if not stat.S_ISREG(info.st_mode):
                raise ConfigurationError(f"template {path} is not a regular file")
            if info.st_size > MAX_TEMPLATE_BYTES:
                raise ConfigurationError(
                    f"template {path} is {info.st_size} bytes; the limit is {MAX_TEMPLATE_BYTES}")
            with open(real, "rb") as handle:
                data = handle.read(MAX_TEMPLATE_BYTES + 1)
        except FileNotFoundError:
            raise ConfigurationError(f"template {path} is a link to nothing ({real})") from None
        except OSError as exc:
            raise ConfigurationError(f"template {path} cannot be read: {exc.strerror or exc}") from None
        if len(data) > MAX_TEMPLATE_BYTES:
            raise ConfigurationError(f"template {path} is larger than the limit of {MAX_TEMPLATE_BYTES} bytes")
        try:
            source = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigurationError(f"template {path} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
        mtime = info.st_mtime

        def uptodate() -> bool:
            try:
                return os.path.getmtime(real) == mtime
            except OSError:
                return False

        return source, path, uptodate

    def list_templates(self) -> list[str]:
        """Every file in the folder and its subfolders, without following links to folders (a
        link to its own folder would be walked for ever); a linked file is listed, and checked
        when it is loaded."""
        folder = self.searchpath[0]
        found = []
        for here, _folders, files in os.walk(folder):
            for file in files:
                relative = os.path.relpath(os.path.join(here, file), folder)
                found.append(relative.replace(os.sep, "/"))
        return sorted(found)


#: The environment options of every renderer. Escape everything except the known plain-text
#: parts: `select_autoescape(["html"])` alone would not match `*.html.j2`, and a new kind of
#: file should fail safe.
_OPTIONS: Final[dict[str, Any]] = {
    "autoescape": select_autoescape(
        enabled_extensions=("html", "html.j2"),
        disabled_extensions=("txt.j2", "subject.j2"),
        default_for_string=False,
        default=True,
    ),
    "undefined": StrictUndefined,
    "trim_blocks": True,
    "lstrip_blocks": True,
    "keep_trailing_newline": True,
}


@functools.cache
def _bundled_loader() -> PackageLoader:
    return PackageLoader("notifications", "templates")


class _PlainEnvironment(Environment):
    """Jinja's environment, with ``item.key`` on a dict (every value a template gets is plain
    data) looked up as the item straight away when no dict attribute has that name, which is
    what Jinja comes to after a failed ``getattr``: the same value, without raising and
    catching an AttributeError for every ``e.at`` in a loop."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        """A template's globals as one plain dict instead of Jinja's ChainMap over the
        environment's: this environment's globals never change once it is made, and copying a
        ChainMap into the context of every render cost as much as rendering a subject."""
        return {**self.globals, **(d or {})}


_DICT_ATTRIBUTES: Final = frozenset(dir(dict))


@functools.cache
def _bundled_environment() -> Environment:
    """The packaged templates' own environment, one per process, its templates compiled once.

    They are part of the product, like its Python code, so they render without the sandbox
    and the bounds of :mod:`notifications.bounds`: those are for the operator's override
    folder, whose templates are code the product did not write. With the same options the
    output is the same (``tests/test_notifications_render.py`` renders every bundled template
    both ways); rendering is about three times faster without the checks on every value.
    """
    return _PlainEnvironment(loader=_bundled_loader(), auto_reload=False, **_OPTIONS)


#: The bundled templates, compiled: shared by every renderer without an override folder.
_BUNDLED_TEMPLATES: dict[str, Template] = {}


class Renderer:
    """Renders the notification emails of one language, with an optional override folder.

    Templates in ``override_dir`` replace the packaged ones of the same name; a file there whose
    name starts with ``_`` is a partial (for ``{% include %}``, ``{% extends %}``, macros).
    """

    def __init__(self, language: str = "nl", override_dir: Path | None = None) -> None:
        check_language(language)
        if override_dir is not None and not override_dir.is_dir():
            what = "is not a folder" if override_dir.exists() else "does not exist"
            raise ConfigurationError(f"template folder {override_dir} {what}")
        self.language = language
        self.override_dir = override_dir
        self._env: Environment
        self._templates: dict[str, Template]
        if override_dir is None:
            self._env = _bundled_environment()
            self._templates = _BUNDLED_TEMPLATES
        else:
            self._env = bounds.BoundedSandbox(
                loader=ChoiceLoader([_OverrideLoader(override_dir), _bundled_loader()]),
                **_OPTIONS)
            self._templates = {}

    def render(self, kind: str, context: EmailContext | Mapping[str, Any]) -> RenderedEmail:
        """Render the subject, text and HTML of one email of ``kind``."""
        data = _plain_context(kind, context)
        subject = self._render(template_name(kind, self.language, "subject"), data)
        return RenderedEmail(
            subject=one_line(subject),
            text=self._render(template_name(kind, self.language, "txt"), data),
            html=self._render(template_name(kind, self.language, "html"), data),
        )

    def check(self) -> list[str]:
        """Compile every template the override folder provides; render the known ones (all of
        this language's, when the folder overrides a partial they may include).

        Meant for start-up (``loket worker``, ``loket outbox send``), so that a broken override
        is reported before an escalation depends on it. Returns the names checked; raises
        :class:`ConfigurationError` naming the file and line of the first problem.
        """
        if self.override_dir is None:
            return []
        names = sorted(
            name
            for name in _OverrideLoader(self.override_dir).list_templates()
            if name.endswith(".j2")
        )
        for name in names:
            if name not in KNOWN_TEMPLATES and not Path(name).name.startswith("_"):
                raise ConfigurationError(
                    f"template {self.override_dir / name}: unknown template name; expected "
                    "{kind}.{language}.{subject|txt|html}.j2 with kind one of "
                    f"{', '.join(TEMPLATE_KINDS)} and language one of {', '.join(LANGUAGES)}, "
                    "or a partial whose name starts with '_'"
                )
            self._load(name)
        rendered = {name for name in names if name in KNOWN_TEMPLATES}
        if any(Path(name).name.startswith("_") for name in names):
            # A partial may be part of any template: try them all, as this language uses them.
            rendered |= {template_name(kind, self.language, part) for kind in TEMPLATE_KINDS for part in PARTS}
        for name in sorted(rendered):
            kind = name.split(".", 1)[0]
            for sample in sample_contexts(kind, self.language):
                self._render(name, _plain_context(kind, sample))
        return names

    def _load(self, name: str) -> Template:
        known = self._templates.get(name)
        if known is not None:
            return known
        try:
            template = self._env.get_template(name)
            if self.override_dir is None:
                self._templates[name] = template  # the package's files do not change under us
            return template
        except TemplateSyntaxError as exc:
            where = exc.filename or name
            raise ConfigurationError(f"template {where}, line {exc.lineno}: {exc.message}") from exc
        except TemplateNotFound as exc:
            raise ConfigurationError(f"template {exc.name} not found") from exc
        except (RecursionError, MemoryError, SyntaxError) as exc:
            # Nesting deep enough to exhaust the parser, or Python's compiler of the result.
            own = self.override_dir is not None and (self.override_dir / name).exists()
            place = str(self.override_dir / name) if self.override_dir is not None and own else name
            raise ConfigurationError(
                f"template {place} is nested too deeply to compile ({type(exc).__name__})") from None

    def _render(self, name: str, data: dict[str, Any]) -> str:
        """Render one template within the bounds of :mod:`notifications.bounds`."""
        template = self._load(name)
        try:
            if self.override_dir is None:
                return template.render(data)
            with bounds.bounded():
                return template.render(data)
        except ConfigurationError:
            raise
        except (
            TemplateError,
            ArithmeticError,
            LookupError,
            TypeError,
            ValueError,
            RuntimeError,
            MemoryError,
        ) as exc:
            where = _template_frame(exc) or template.filename or name
            if isinstance(exc, TemplateNotFound):
                message = f"{exc.name} not found"
            elif isinstance(exc, MemoryError):
                message = "out of memory"
            else:
                message = getattr(exc, "message", None) or str(exc)
            raise ConfigurationError(f"template {where}: {message}") from exc


def _template_frame(exc: BaseException) -> str | None:
    """``file, line N`` of the innermost template frame in the traceback, if any.

    Jinja rewrites tracebacks so that template code shows up as frames of the template file,
    which also finds the right file when the error is inside an included partial.
    """
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith(".j2")]
    if not frames:
        return None
    return f"{frames[-1].filename}, line {frames[-1].lineno}"


#: The characters of Unicode's category Cc (control), C0 and C1.
_CONTROL: Final = re.compile("[\x00-\x1f\x7f-\x9f]")


def one_line(subject: str) -> str:
    """Turn control characters (CR and LF included) into spaces, collapse whitespace, strip.

    A line break that reaches the subject from the data becomes a space, so it cannot start a
    new header, and the escalation is still sent: refusing would let what a resident typed stop
    an escalation. :func:`notifications.message.build_message` refuses any line break that
    bypasses this.
    """
    visible = _CONTROL.sub(" ", subject)
    return " ".join(visible.split())


def _plain_context(kind: str, context: Mapping[str, Any]) -> dict[str, Any]:
    """Check that ``context`` has the keys of ``kind`` and holds plain data only; copy it."""
    if kind not in REQUIRED_KEYS:
        raise InvalidValue(f"unknown email kind {kind!r}; known: {', '.join(TEMPLATE_KINDS)}")
    _check_keys(context, REQUIRED_KEYS[kind], f"{kind} email context")
    if kind in KINDS:
        _check_reader(context)
        _check_events(context["events"], "")
    elif kind == DIGEST:
        for number, case in enumerate(_items(context["cases"], "cases"), start=1):
            where = f"case {number} of the digest"
            _check_keys(case, DIGEST_CASE_KEYS, where)
            _check_events(case["events"], f" ({where})")
            for firing in _items(case["firings"], f"firings of {where}"):
                _check_keys(firing, DIGEST_FIRING_KEYS, f"a firing of {where}")
                _check_reader(firing)
    plain = _plain(context, "context")
    assert isinstance(plain, dict)
    if kind == MailKind.ESCALATION:
        plain.setdefault("extendable", True)  # optional: most request types have a decision term
    return plain


def _check_keys(context: Any, keys: tuple[str, ...], what: str) -> None:
    if not isinstance(context, Mapping):
        raise InvalidValue(f"{what} is no mapping")
    missing = [key for key in keys if key not in context]
    if missing:
        raise InvalidValue(f"{what} lacks {', '.join(missing)}")


def _check_reader(context: Mapping[str, Any]) -> None:
    if context["reader"] not in READERS:
        raise InvalidValue(
            f"email context: reader {context['reader']!r} is none of {', '.join(READERS)}"
        )


def _items(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise InvalidValue(f"email context: {what} is no list")
    return list(value)


def _check_events(events: Any, where: str) -> None:
    for number, event in enumerate(_items(events, f"events{where}"), start=1):
        if not isinstance(event, Mapping) or any(key not in event for key in EVENT_KEYS):
            raise InvalidValue(f"event {number} of the email context{where} needs {EVENT_KEYS}")


_SCALARS: Final = frozenset({str, int, type(None)})


def _plain(value: Any, where: str) -> Any:
    if value is None or isinstance(value, str | int | float):  # bool is an int
        return value
    if isinstance(value, Mapping):
        if not all(isinstance(key, str) for key in value):
            raise InvalidValue(f"email context: {where} has a key that is not a string")
        # The place is spelt out only for a value that is not a plain str, int or None.
        return {key: item if type(item) in _SCALARS else _plain(item, f"{where}.{key}")
                for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [item if type(item) in _SCALARS else _plain(item, f"{where}[{i}]")
                for i, item in enumerate(value)]
    raise InvalidValue(
        f"email context: {where} is a {type(value).__name__}; only plain data may be passed"
    )


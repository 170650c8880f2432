"""The shape of ``bdr.yaml`` as pydantic models: every key known, every value of its kind, each mistake placed.

The models are built from the settings dataclasses of :mod:`bdr.config.settings` (one model
per class, from its fields' types, defaults and docstrings) plus a few small ones for the
sections written otherwise than they are held (instances, retention, schedule, archive,
drill). A ``float`` field is a duration (``90``, ``30s``, ``5m``); the ``ARGV``, ``SIZE``
and ``ONE_OR_MORE`` marks say how the other fields may be written. Every mapping refuses
keys it does not know.

:func:`check` validates a parsed file and returns what it holds in bdr's units (seconds,
argv tuples, bytes), or raises :class:`ShapeError` with the first mistake: its key path and
a one-line message in bdr's words. :func:`json_schema` is the JSON Schema (2020-12) of the
same models, for editors (``bdr init --schema``). The cross-field rules (a runtime that
needs a unit, an instance a drill names) stay in the dataclasses' ``validate``.

pydantic is imported only here, so only a run that reads a file pays for it (about 0.12 s: its import,
and one build of the file's model; every model inside it defers its own build to that one).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import itertools
import re
import shlex
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    WithJsonSchema,
    create_model,
)
from pydantic_core import PydanticCustomError

from bdr.config import settings
from bdr.drill.settings import CHECK_SOURCES, DRILL_SOURCES
from bdr.sources import all_sources
from bdr.util.durations import DURATION_PATTERN, parse_duration
from bdr.util.units import SIZE_PATTERN, parse_size

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class ShapeError(Exception):
    """The first mistake of a file: where it is (``("redis", "production", "urll")``) and what is wrong."""

    loc: Loc
    text: str

    def __str__(self) -> str:
        return self.text


def _refuse(kind: str, text: str) -> PydanticCustomError:
    return PydanticCustomError(kind, "{text}", {"text": text})


# --- how values are written --------------------------------------------------------------------


def _seconds(value: Any) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise _refuse("duration", str(exc)) from None


def _argv(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        try:
            return tuple(shlex.split(value))
        except ValueError as exc:
            raise _refuse("argv", f"{exc} in {value!r}") from None
    if isinstance(value, list | tuple) and all(isinstance(a, str | int | float) and not isinstance(a, bool)
                                               for a in value):
        return tuple(str(a) for a in value)
    raise _refuse("argv", f"must be a list of arguments or a command line, got {value!r}")


def _bytes(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    size = parse_size(value) if isinstance(value, str) else None
    if size is None:
        raise _refuse("size", f"must be a size such as 16MiB or 1048576, got {value!r}")
    return size


def _one_or_more(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _enabled_if_bool(value: Any) -> Any:
    return {"enabled": value} if isinstance(value, bool) else value


def _empty_if_none(value: Any) -> Any:
    return {} if value is None or value is True else value


Duration = Annotated[float, PlainValidator(_seconds), WithJsonSchema({
    "anyOf": [{"type": "number", "minimum": 0},
              {"type": "string", "pattern": DURATION_PATTERN, "examples": ["90s", "5m", "1h", "30d"]}]})]
ArgvValue = Annotated[tuple[str, ...], PlainValidator(_argv), WithJsonSchema({
    "anyOf": [{"type": "string", "description": "a command line, split as a shell would split it"},
              {"type": "array", "items": {"type": ["string", "number"]}}]})]
SizeValue = Annotated[int, PlainValidator(_bytes), WithJsonSchema({
    "anyOf": [{"type": "integer", "minimum": 0},
              {"type": "string", "pattern": SIZE_PATTERN, "examples": ["16MiB", "512k"]}]})]


def _list_of(item: Any) -> Any:
    """A list of ``item``, or one ``item`` for a list of one."""
    return Annotated[types.GenericAlias(tuple, (item, ...)),
                     BeforeValidator(_one_or_more, json_schema_input_type=item | types.GenericAlias(list, (item,)))]


# --- models from the settings dataclasses -------------------------------------------------------


@functools.cache
def _docs_of_module(module: types.ModuleType) -> dict[str, dict[str, str]]:
    """The docstring under each field (``name: str`` then ``\"\"\"...\"\"\"``) of each class of ``module``."""
    docs: dict[str, dict[str, str]] = {}
    for node in ast.parse(inspect.getsource(module)).body:
        if not isinstance(node, ast.ClassDef):
            continue
        fields = docs.setdefault(node.name, {})
        for item, after in itertools.pairwise(node.body):
            if (isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
                    and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                fields[item.target.id] = " ".join(after.value.value.split())
    return docs


def _field_docs(cls: type[Any]) -> dict[str, str]:
    return _docs_of_module(inspect.getmodule(cls) or settings).get(cls.__name__, {})


def _summary(cls: type[Any]) -> str:
    return " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def _form(hint: Any) -> Any:
    """The pydantic type of a settings field: how it is written in the file."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is Annotated:
        base, *marks = args
        if settings.ARGV in marks:
            return ArgvValue
        if settings.SIZE in marks:
            return SizeValue
        if settings.ONE_OR_MORE in marks:
            return _list_of(StrictStr)
        return _form(base)
    simple = {float: Duration, bool: StrictBool, int: StrictInt, str: StrictStr}
    if hint in simple:
        return simple[hint]
    if origin in (Union, types.UnionType):
        members = [m for m in args if m is not type(None)]
        if len(members) == 1:
            return _form(members[0]) | None
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return types.GenericAlias(tuple, (_form(args[0]), ...))
    if origin in (Mapping, dict):
        return types.GenericAlias(dict, (str, _form(args[1])))
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        model: Any = model_of(hint)
        if "enabled" in model.model_fields:  # ``tls: true`` is ``tls: {enabled: true}``
            return Annotated[model, BeforeValidator(_enabled_if_bool, json_schema_input_type=StrictBool | model)]
        return model
    raise TypeError(f"bdr.config.shape: no written form for {hint!r}")


@functools.cache
def _runtimes() -> dict[type[Any], tuple[str, ...]]:
    """The runtimes each kind of instance may name (:mod:`bdr.runtime`'s registry)."""
    from bdr.runtime import runtime_names

    return {settings.RedisInstance: tuple(runtime_names("redis")),
            settings.QdrantInstance: ("process", *runtime_names("qdrant")),
            settings.PrometheusInstance: settings.PROMETHEUS_RUNTIMES,
            settings.GrafanaInstance: settings.GRAFANA_RUNTIMES}


@functools.cache
def model_of(cls: Any) -> type[BaseModel]:
    """The model of one settings dataclass; a ``name`` without a default is the key the settings sit under."""
    hints = get_type_hints(cls, include_extras=True)
    docs = _field_docs(cls)
    fields: dict[str, Any] = {}
    for spec in dataclasses.fields(cls):
        if spec.name == "name" and spec.default is dataclasses.MISSING:
            continue
        if spec.default is not dataclasses.MISSING:
            default = _jsonable(spec.default)
        elif spec.default_factory is not dataclasses.MISSING:
            default = _jsonable(spec.default_factory())
        else:
            default = ...
        form = _form(hints[spec.name])
        if spec.name == "runtime" and cls in _runtimes():
            form = Literal[_runtimes()[cls]]
        fields[spec.name] = (form, Field(default, description=docs.get(spec.name)))
    model: type[BaseModel] = create_model(
        cls.__name__, __config__=ConfigDict(extra="forbid", title=cls.__name__, defer_build=True),
        __doc__=_summary(cls), **fields)
    return model


def _instances(kind: str, cls: Any) -> type[BaseModel]:
    """``KIND: {default: NAME, NAME: {settings}, ...}``: any instance name, each with the settings of ``cls``."""
    model: Any = model_of(cls)
    item = Annotated[model, BeforeValidator(_empty_if_none, json_schema_input_type=model | None)]
    namespace = {
        "__annotations__": {"default": StrictStr | None, "__pydantic_extra__": types.GenericAlias(dict, (str, item))},
        "default": Field(None, description="The instance a command uses when none is named (default: "
                                           "production, else the first)."),
        "model_config": ConfigDict(extra="allow", title=f"{cls.__name__}s", defer_build=True),
        "__doc__": f"The {kind} instances by name: {_summary(cls)}",
    }
    return type(f"{cls.__name__}s", (BaseModel,), namespace)


# --- the sections that are not one dataclass -----------------------------------------------------


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class RetentionRuleSection(_Section):
    """One row of the retention table."""

    keep: Duration = Field(0.0, description="How long: a calendar rule's window, within's age, safety's age.")
    locations: _list_of(Literal[settings.RETENTION_LOCATIONS]) = Field(  # type: ignore[valid-type]
        ("local",), description="Where the rule applies: local, s3 or both.")
    count: Annotated[StrictInt, Field(ge=1)] | None = Field(None, description="At most this many (last: required).")


RetentionRule = Annotated[RetentionRuleSection, BeforeValidator(_empty_if_none)]
RetentionSection: Any = create_model(  # type: ignore[call-overload]
    "RetentionSection", __config__=ConfigDict(extra="forbid", defer_build=True),
    __doc__="Which sets to keep, per kind: calendar periods (UTC), the newest N, an age, safety backups.",
    **{kind: (RetentionRule | None, None) for kind in settings.RETENTION_KINDS},
)


def _cron_first(value: Any) -> Any:
    return {"cron": value} if not isinstance(value, Mapping) else value


class ScheduleJob(_Section):
    """A job's cron expression and options (a bare string is the cron expression)."""

    cron: StrictStr = Field(description='Five cron fields, e.g. "*/30 * * * *".')
    source: StrictStr | None = Field(None, description="offsite: the source copied off-site (default: all).")
    remote: StrictStr | None = Field(None, description="offsite: the s3:// repository (default: remote.url).")
    restore_test: StrictBool = Field(False, description="verify: also load each set into a temporary instance.")
    compress: StrictBool = Field(False, description="backup and offsite: compress the set.")
    wait_lock: Duration | None = Field(None, description="How long to wait for the repository lock.")


ScheduleValue = Annotated[ScheduleJob, BeforeValidator(_cron_first, json_schema_input_type=StrictStr | ScheduleJob)]


class ArchiveSection(_Section):
    """Continuous archiving (only Redis is archived continuously)."""

    redis: dict[str, Annotated[model_of(settings.ArchiveSettings),  # type: ignore[valid-type]
                               BeforeValidator(_empty_if_none)]] = Field(
        default_factory=dict, description="The Redis instances archived, by name ({} for the defaults).")


CHECK_SCHEMA = {"type": "object", "minProperties": 1, "maxProperties": 1,
                "propertyNames": {"enum": list(CHECK_SOURCES)},
                "description": "One application check, e.g. {key_exists: test_key}, {min_points: {collection: "
                               "documents, count: 100}}"}


class SourceDrillSection(_Section):
    """How one source is restore-tested (``false`` leaves it out)."""

    enabled: StrictBool = True
    production: StrictStr | None = Field(None, description="The instance only read (default: the default one).")
    target: StrictStr | None = Field(None, description="Where the set is restored: an instance of bdr.yaml that is "
                                                       "not production (config: a directory).")
    checks: list[Annotated[Any, WithJsonSchema(CHECK_SCHEMA)]] = Field(
        default_factory=list, description="Application checks on the restored data (bdr.drill.settings checks each).")


SourceDrillValue = Annotated[SourceDrillSection, BeforeValidator(
    _enabled_if_bool, json_schema_input_type=StrictBool | SourceDrillSection)]
DrillSection: Any = create_model(  # type: ignore[call-overload]
    "DrillSection", __config__=ConfigDict(extra="forbid", defer_build=True),
    __doc__="bdr drill --live: test targets, application checks, evidence retention, signing key.",
    **{source: (SourceDrillValue | None, None) for source in DRILL_SOURCES},
    evidence_keep=(Duration, Field(365 * 86400.0, description="How long drill reports stay in evidence/.")),
    remediation_due=(Duration, Field(14 * 86400.0, description="Due date of a new remediation item.")),
    signing_key=(StrictStr | None, Field(None, description="Ed25519 key file (bdr report keygen FILE).")),
    schedule=(StrictStr, Field("0 6 1 * *", description="The monthly restore test (cron).")),
    reports=(StrictStr, Field("reports", description="Where drill reports are written.")),
)


FILE_FORMS: Mapping[str, Any] = {
    "retention": RetentionSection,
    "schedule": dict[str, ScheduleValue],
    "drill": DrillSection,
    "archive": ArchiveSection,
}
"""The sections written otherwise than their settings are held (the others follow :class:`~bdr.config.Config`)."""


@functools.cache
def file_model() -> type[BaseModel]:
    """The model of the whole file, from :class:`~bdr.config.Config`: each field a section, all optional.

    A source with instances (:mod:`bdr.sources`) is a mapping of instance name to its settings."""
    hints = get_type_hints(settings.Config, include_extras=True)
    instanced = {s.section for s in all_sources() if s.instanced}
    docs = _field_docs(settings.Config)
    fields: dict[str, Any] = {}
    for spec in dataclasses.fields(settings.Config):
        if spec.name == "path" or spec.name.removesuffix("_default") in instanced - {spec.name}:
            continue
        if spec.name in FILE_FORMS:
            form = FILE_FORMS[spec.name]
        elif spec.name in instanced:
            form = _instances(spec.name, get_args(hints[spec.name])[1])
        else:
            form = _form(hints[spec.name])
        default = spec.default if isinstance(spec.default, str) else None
        fields[spec.name] = (form | None, Field(default, description=docs.get(spec.name)))
    model: type[BaseModel] = create_model(  # type: ignore[call-overload]
        "BdrFile", __config__=ConfigDict(extra="forbid", title="bdr.yaml"),
        __doc__="The policy file of bdr: what to back up, where, and the targets.", **fields)
    return model


def section_names() -> tuple[str, ...]:
    return tuple(file_model().model_fields)


# --- checking a file ----------------------------------------------------------------------------------


def check(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` validated: only the keys it holds, in bdr's units; :class:`ShapeError` for the first mistake."""
    try:
        validated = file_model().model_validate(dict(data))
    except ValidationError as exc:
        raise first_mistake(exc.errors(include_url=False)) from None
    return validated.model_dump(exclude_unset=True)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of bdr.yaml (draft 2020-12), from the same models :func:`check` uses."""
    schema = file_model().model_json_schema(mode="validation")
    return {"$schema": SCHEMA_DIALECT, **schema}


def where(loc: Sequence[str | int]) -> str:
    """``redis.production.commands.start``, ``drill.redis.checks[0]``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _unwrap(form: Any) -> Any:
    while True:
        origin, args = get_origin(form), get_args(form)
        if origin is Annotated:
            form = args[0]
        elif origin in (Union, types.UnionType) and type(None) in args:
            form = next(a for a in args if a is not type(None))
        else:
            return form


def model_at(loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model that holds the keys at ``loc`` (None when what is there is not a model)."""
    form: Any = file_model()
    for part in loc:
        form = _unwrap(form)
        if isinstance(form, type) and issubclass(form, BaseModel):
            if isinstance(part, str) and part in form.model_fields:
                form = form.model_fields[part].annotation
            elif "__pydantic_extra__" in getattr(form, "__annotations__", {}):
                form = get_args(form.__annotations__["__pydantic_extra__"])[1]
            else:
                return None
        elif get_origin(form) is dict:
            form = get_args(form)[1]
        elif get_origin(form) in (list, tuple):
            form = get_args(form)[0]
        else:
            return None
    form = _unwrap(form)
    return form if isinstance(form, type) and issubclass(form, BaseModel) else None


NEEDS: Mapping[str, str] = {"cron": 'a cron expression, e.g. "*/30 * * * *" (cron: in a mapping)'}
"""What a required key holds, for the message when it is missing."""
HINTS: Mapping[str, str] = {"archive": "only Redis is archived continuously"}
"""Added to the message of an unknown key at these places."""
_KINDS = {
    "bool_type": "must be true or false", "bool_parsing": "must be true or false",
    "string_type": "must be a string", "int_type": "must be a whole number", "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number", "float_type": "must be a number",
    "list_type": "must be a list", "tuple_type": "must be a list", "iterable_type": "must be a list",
}
_MAPPINGS = ("dict_type", "model_type", "model_attributes_type", "mapping_type")


def first_mistake(errors: Sequence[Any]) -> ShapeError:
    """The first of pydantic's errors in bdr's words (unknown keys beside it named together)."""
    error = errors[0]
    loc: Loc = tuple(part for part in error["loc"] if isinstance(part, int | str))
    kind, value, place = error["type"], error.get("input"), where(loc)
    if kind == "extra_forbidden":
        parent = loc[:-1]
        unknown = [str(e["loc"][-1]) for e in errors
                   if e["type"] == "extra_forbidden" and tuple(e["loc"][:-1]) == parent]
        model = model_at(parent)
        known = ", ".join(sorted(model.model_fields)) if model is not None else ""
        hint = f"; {HINTS[where(parent)]}" if where(parent) in HINTS else ""
        head = f"unknown key(s) in {where(parent)}" if parent else "unknown section(s)"
        return ShapeError(loc, f"{head}: {', '.join(unknown)} (known: {known}){hint}")
    if kind in _KINDS:
        return ShapeError(loc, f"{place} {_KINDS[kind]}, got {value!r}")
    if kind in _MAPPINGS:
        return ShapeError(loc, f"{place} must be a mapping, got {type(value).__name__}")
    if kind == "literal_error":
        known = ", ".join(re.findall(r"'([^']*)'", str(error.get("ctx", {}).get("expected", ""))))
        name = next((str(p) for p in reversed(loc) if isinstance(p, str)), "value")
        name = name.removesuffix("s") if loc and isinstance(loc[-1], int) else name
        return ShapeError(loc, f"{place}: unknown {name} {value!r} (known: {known})")
    if kind == "missing":
        needs = NEEDS.get(str(loc[-1]))
        return ShapeError(loc, f"{where(loc[:-1])} needs {needs}" if needs else f"{place} is required")
    if kind in ("greater_than_equal", "greater_than"):
        return ShapeError(loc, f"{place} must be at least {error['ctx'].get('ge', error['ctx'].get('gt'))}, "
                               f"got {value!r}")
    text = str(error.get("ctx", {}).get("text") or error["msg"])
    return ShapeError(loc, f"{place} {text}" if text.startswith("must ") else f"{place}: {text}")

"""``hookbay apply -f FILE``: the declarative file format and the idempotent upsert by name.

The file is validated in full before anything is sent, so a typo never half-applies a file. New keys
(``verify`` ...) go on :class:`SourceSpec` (or a nested model) plus one step in :func:`apply_source`;
error messages, paths and "did you mean" follow from the models. Action rules are checked with the
same model the server uses (:class:`hookbay_common.rules.ActionRule`).
"""

from __future__ import annotations

import difflib
import sys
import typing
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import grpc
import yaml
from google.protobuf import json_format
from pydantic import BaseModel, ConfigDict, Field, JsonValue, StrictInt, StrictStr, ValidationError
from pydantic_core import ErrorDetails

from hookbay.admin.v1 import admin_service_pb2 as pb
from hookbay_cli.client import AdminClient, ApiError, to_struct
from hookbay_cli.errors import CliError
from hookbay_cli.output import plain, rule_dict, struct_dict
from hookbay_common.errors import InvalidArgument
from hookbay_common.rules import ActionRule, validate_rules
from hookbay_common.secrets import redact

# -- the file format -------------------------------------------------------------------------------


class Spec(BaseModel):
    # Unknown keys are errors, not silently ignored: a misspelt key must never look applied.
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceSpec(Spec):
    """One source; keys left out keep their current value (or the default when creating)."""

    name: StrictStr = Field(min_length=1)
    client: StrictStr | None = None
    format: StrictStr | None = None
    max_body: StrictInt | None = Field(default=None, ge=0)
    status: Literal["active", "paused"] | None = None
    settings: dict[str, JsonValue] | None = None
    # None (key absent): the rules stay as they are; a list (even empty) replaces them.
    actions: list[ActionRule] | None = None
    # The door: kept in the source's settings, written at the top level for readability. The
    # server validates them and names the offending key.
    verify: dict[str, JsonValue] | None = None
    quarantine: bool | None = None
    dedup: JsonValue = None
    rate_limit: dict[str, JsonValue] | None = None
    handshakes: dict[str, JsonValue] | None = None
    verify_token: StrictStr | None = None
    response: dict[str, JsonValue] | None = None
    content_types: list[StrictStr] | None = None

    def effective_settings(self) -> dict[str, Any] | None:
        """``settings`` with the door keys merged in; None when the file names none of them."""
        door = {key: getattr(self, key) for key in DOOR_KEYS if getattr(self, key) is not None}
        if self.settings is None and not door:
            return None
        clash = sorted(set(door) & set(self.settings or {}))
        if clash:
            raise ValueError(f"{clash[0]}: given both at the top level and under settings")
        return {**(self.settings or {}), **door}

    def rules(self) -> list[dict[str, Any]] | None:
        """The rules as the server stores them (every key, defaults filled in), or None."""
        if self.actions is None:
            return None
        return validate_rules([rule.model_dump() for rule in self.actions])


DOOR_KEYS = (
    "verify",
    "quarantine",
    "dedup",
    "rate_limit",
    "handshakes",
    "verify_token",
    "response",
    "content_types",
)


class ApplyFile(Spec):
    sources: list[SourceSpec]


# -- loading ---------------------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of keeping the last one without a word."""


_BOOL_TAG = "tag:yaml.org,2002:bool"
_STR_TAG = "tag:yaml.org,2002:str"


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _value in node.value:
        # YAML 1.1 reads a bare `on`, `off`, `yes` or `no` as a boolean; as a key (`on: root` in an
        # action rule) it is meant as the word.
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag == _BOOL_TAG and not key_node.style:
            key_node.tag = _STR_TAG
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, Hashable) and key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_text(path: str) -> tuple[str, bytes]:
    """The file's label for messages and its bytes; ``-`` reads stdin."""
    if path == "-":
        return "<stdin>", sys.stdin.buffer.read()
    label = path
    try:
        return label, Path(path).read_bytes()
    except FileNotFoundError:
        raise CliError(f"{label}: no such file") from None
    except IsADirectoryError:
        raise CliError(f"{label}: is a directory, not a file") from None
    except PermissionError:
        raise CliError(f"{label}: permission denied") from None
    except OSError as exc:
        raise CliError(f"{label}: cannot read: {exc.strerror}") from None


def parse(label: str, data: bytes) -> ApplyFile:
    try:
        document = yaml.load(data, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise CliError(f"{label}: invalid YAML{where}: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise CliError(f"{label}: invalid YAML: {exc}") from None
    if document is None:
        raise CliError(f"{label}: the file is empty; expected a top-level `sources:` list")
    try:
        spec = ApplyFile.model_validate(document)
    except ValidationError as exc:
        # A misspelt key also makes the real one "missing": the unknown key is the better clue.
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise CliError(f"{label}: {describe(errors[0])}{more}") from None
    seen: dict[str, int] = {}
    for index, source in enumerate(spec.sources):
        try:
            source.effective_settings()
        except ValueError as exc:
            raise CliError(f"{label}: sources[{index}].{exc}") from None
        inexact = inexact_numbers(source.settings or {}, f"sources[{index}].settings")
        if inexact:
            raise CliError(
                f"{label}: {inexact[0]}: integers beyond 2**53 cannot be stored exactly in settings;"
                " quote it as text"
            )
        if source.name in seen:
            raise CliError(
                f"{label}: sources[{index}].name: {source.name!r} is already used by sources[{seen[source.name]}]"
            )
        seen[source.name] = index
        check_rules(label, index, source)
    return spec


def check_rules(label: str, index: int, source: SourceSpec) -> None:
    """What the models cannot see one rule at a time: names unique within the source."""
    names: dict[str, int] = {}
    for number, rule in enumerate(source.actions or []):
        where = f"sources[{index}].actions[{number}]"
        if rule.name in names:
            raise CliError(
                f"{label}: {where}.name: {rule.name!r} is already used by"
                f" sources[{index}].actions[{names[rule.name]}]"
            )
        names[rule.name] = number
    try:
        source.rules()  # the server's own check, so the file never passes here and fails there
    except InvalidArgument as exc:
        raise CliError(f"{label}: sources[{index}].{exc.message}") from None


def inexact_numbers(value: Any, path: str) -> list[str]:
    """Paths of integers a protobuf Struct (all doubles) would round: refused rather than altered."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in inexact_numbers(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in inexact_numbers(v, f"{path}[{i}]")]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:
        return [path]
    return []


def load(path: str) -> tuple[str, ApplyFile]:
    label, data = read_text(path)
    return label, parse(label, data)


# -- error messages --------------------------------------------------------------------------------


def loc_path(loc: tuple[int | str, ...]) -> str:
    """``("sources", 1, "formt")`` → ``sources[1].formt``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model inside an annotation such as ``list[SourceSpec] | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model that owns the last element of ``loc`` (for listing the keys it allows)."""
    model: type[BaseModel] | None = ApplyFile
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if model is None or part not in model.model_fields:
            return None
        model = _model_in(model.model_fields[part].annotation)
    return model


def _unknown_key(loc: tuple[int | str, ...]) -> str:
    model = _model_at(loc)
    if model is None:
        return "unknown key"
    allowed = list(model.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
    if close:
        return f"unknown key (did you mean {close[0]!r}?)"
    return f"unknown key (allowed: {', '.join(allowed)})"


def describe(error: ErrorDetails) -> str:
    """One pydantic error as ``path: what is wrong``, in words for people editing YAML."""
    loc = tuple(error["loc"])
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if not loc and kind in ("model_type", "model_attributes_type", "dict_type"):
        return "the top level must be a mapping with a `sources:` list"
    messages: dict[str, Callable[[], str]] = {
        "missing": lambda: "required",
        "extra_forbidden": lambda: _unknown_key(loc),
        "int_type": lambda: "must be a whole number",
        "int_parsing": lambda: "must be a whole number",
        "int_from_float": lambda: "must be a whole number",
        "greater_than_equal": lambda: f"must be {ctx.get('ge')} or more",
        "string_type": lambda: "must be text",
        "string_too_short": lambda: "must not be empty",
        "literal_error": lambda: f"must be {ctx.get('expected')}",
        "dict_type": lambda: "must be a mapping",
        "model_type": lambda: "must be a mapping",
        "model_attributes_type": lambda: "must be a mapping",
        "list_type": lambda: "must be a list",
        "invalid-json-value": lambda: "must be plain YAML data (text, numbers, booleans, lists, mappings)",
        "value_error": lambda: str(error["msg"]).removeprefix("Value error, "),
    }
    make = messages.get(kind)
    message = make() if make else error["msg"][:1].lower() + error["msg"][1:]
    if kind == "value_error":
        loc = loc + _rule_key(loc, error.get("input"))
    return f"{loc_path(loc)}: {message}" if loc else message


def _rule_key(loc: tuple[int | str, ...], value: Any) -> tuple[str, ...]:
    """For a check over a whole action rule (an email needs to and subject), the first key it is about."""
    if len(loc) < 2 or loc[-2] != "actions" or not isinstance(value, dict):
        return ()
    if value.get("type") == "email":
        for key in ("to", "subject"):
            if not str(value.get(key) or "").strip():
                return (key,)
    return ()


# -- applying --------------------------------------------------------------------------------------


@dataclass
class Outcome:
    verb: str  # created / updated / unchanged
    name: str
    changed: list[str] = field(default_factory=list)
    url: str = ""

    def line(self) -> str:
        if self.verb == "created":
            paused = " (paused)" if "status" in self.changed else ""
            return f"created   {self.name}  {self.url}{paused}"
        if self.verb == "updated":
            return f"updated   {self.name}  ({', '.join(self.changed)})"
        return f"unchanged {self.name}"


def _normal_settings(settings: dict[str, Any]) -> dict[str, Any]:
    # Compare as the server will hold them: through a Struct, where every number is a double.
    return plain(json_format.MessageToDict(to_struct(settings)))


def field_changes(spec: SourceSpec, current: pb.Source) -> dict[str, Any]:
    """The UpdateSource fields whose desired value differs from the current one."""
    changes: dict[str, Any] = {}
    if spec.client is not None and spec.client.strip() != current.client:
        changes["client"] = spec.client
    # The server stores formats trimmed and lower-cased ("" meaning auto).
    if spec.format is not None and (spec.format.strip().lower() or "auto") != current.format:
        changes["format"] = spec.format
    if spec.max_body is not None and spec.max_body != current.max_body:
        changes["max_body"] = spec.max_body
    settings = spec.effective_settings()
    # The server shows secrets only as fingerprints: compare like with like.
    if settings is not None and _normal_settings(redact(settings)) != struct_dict(current.settings):
        changes["settings"] = settings
    rules = spec.rules()
    if rules is not None and rules != [rule_dict(rule) for rule in current.actions]:
        changes["actions"] = rules
    return changes


def set_status(client: AdminClient, spec: SourceSpec, current: pb.Source) -> pb.Source | None:
    """Pause or resume when the file asks for the other status; None when it already matches."""
    if spec.status is None:
        return None
    paused = current.status == pb.SOURCE_STATUS_PAUSED
    if spec.status == "paused" and not paused:
        return client.pause_source(spec.name)
    if spec.status == "active" and paused:
        return client.resume_source(spec.name)
    return None


def apply_source(client: AdminClient, spec: SourceSpec) -> Outcome:
    try:
        current = client.get_source(spec.name)
    except ApiError as exc:
        if exc.code != grpc.StatusCode.NOT_FOUND:
            raise
        created = client.create_source(
            name=spec.name,
            client=spec.client or "",
            fmt=spec.format or "",
            max_body=spec.max_body or 0,
            settings=spec.effective_settings(),
            actions=spec.rules(),
            # Created paused, not paused just after: its URL never accepts a packet in between.
            paused=spec.status == "paused",
        )
        set_status(client, spec, created)  # a no-op unless the server ignored the status
        changed = ["status"] if spec.status == "paused" else []
        return Outcome("created", spec.name, changed, url=created.url)

    changes = field_changes(spec, current)
    if changes:
        current = client.update_source(spec.name, changes)
    changed = list(changes)
    if set_status(client, spec, current) is not None:
        changed.append("status")
    return Outcome("updated" if changed else "unchanged", spec.name, changed)


SERVER_REFUSALS = (
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
)


def apply(label: str, spec: ApplyFile, client: AdminClient) -> None:
    """Upsert every source in file order, printing one line each as it is done."""
    if not spec.sources:
        print("nothing to apply: `sources:` is empty")
        return
    for index, source in enumerate(spec.sources):
        try:
            outcome = apply_source(client, source)
        except ApiError as exc:
            if exc.code in SERVER_REFUSALS:
                raise CliError(f"{label}: sources[{index}] ({source.name}): {exc.message}") from None
            raise
        print(outcome.line(), flush=True)

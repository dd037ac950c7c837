"""Action rules: their schema, validation, and evaluation against a record.

A record's data is flat (``billing.email``); rules see it as nested objects, so JMESPath conditions
(``billing.email``) and Jinja2 templates (``{{ billing.first_name }}``) address fields by their
dotted paths. Templates run in Jinja2's sandbox: a rule cannot reach Python internals.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Literal

import jinja2
import jmespath
import jmespath.exceptions
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hookbay_common.errors import InvalidArgument

ACTION_TYPES = ("email", "log")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class ActionRule(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str
    type: Literal["email", "log"]
    on: str = "root"
    when: str = ""
    to: str = ""
    subject: str = ""
    body: str = ""
    sender: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("use letters, digits, '-', '_' or '.', at most 100 characters")
        return value

    @field_validator("when")
    @classmethod
    def _when(cls, value: str) -> str:
        if value:
            try:
                jmespath.compile(value)
            except jmespath.exceptions.JMESPathError as exc:
                raise ValueError(f"not a valid JMESPath expression: {str(exc).splitlines()[0]}") from None
        return value

    @field_validator("to", "subject", "body", "sender")
    @classmethod
    def _template(cls, value: str) -> str:
        try:
            _env().parse(value)
        except jinja2.TemplateSyntaxError as exc:
            raise ValueError(f"template error on line {exc.lineno}: {exc.message}") from None
        return value

    @model_validator(mode="after")
    def _email_fields(self) -> ActionRule:
        if self.type == "email":
            missing = [f for f in ("to", "subject") if not getattr(self, f).strip()]
            if missing:
                raise ValueError(f"an email action needs {' and '.join(missing)}")
        return self


class RuleList(BaseModel):
    rules: list[ActionRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> RuleList:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise ValueError(f"two actions are named {rule.name!r}")
            seen.add(rule.name)
        return self


def validate_rules(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Check rules and return them normalised; InvalidArgument names the first offending field."""
    try:
        rules = RuleList(rules=raw).rules
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"][1:]) or "actions"
        where = re.sub(r"^(\d+)", r"actions[\1]", where)
        raise InvalidArgument(f"{where}: {error['msg'].removeprefix('Value error, ')}") from None
    return [rule.model_dump() for rule in rules]


@functools.cache
def _env() -> SandboxedEnvironment:
    return SandboxedEnvironment(undefined=jinja2.ChainableUndefined, autoescape=False)


def nested(data: dict[str, Any]) -> dict[str, Any]:
    """The nested view of a flat record: {"billing.email": x} → {"billing": {"email": x}}."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node.setdefault(parts[-1], value)
    return out


class CompiledRule:
    def __init__(self, rule: dict[str, Any]) -> None:
        self.rule = ActionRule.model_validate(rule)
        self._when = jmespath.compile(self.rule.when) if self.rule.when else None
        # Templates compile on first use: a log rule never renders any, and compiling all four costs
        # more than matching a record.
        self._templates: dict[str, Any] = {}

    @property
    def name(self) -> str:
        return self.rule.name

    def matches(self, record_type: str, view: dict[str, Any]) -> bool:
        if record_type != self.rule.on:
            return False
        if self._when is None:
            return True
        return bool(self._when.search(view))

    def render(self, field: str, view: dict[str, Any]) -> str:
        template = self._templates.get(field)
        if template is None:
            template = self._templates[field] = _env().from_string(getattr(self.rule, field))
        return template.render(view)

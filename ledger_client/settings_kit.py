"""The one settings mechanism both services use (pydantic-settings): a model
per service read from its prefixed environment variables, overridden by
flags made from the same fields; errors that name the variable and the
values it accepts; the effective settings printable with secrets masked."""

from __future__ import annotations

import argparse
import enum
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings

S = TypeVar("S", bound=BaseSettings)


class SettingsError(ValueError):
    """One line per wrong setting, naming its variable and what it accepts."""


def env_names(model: type[BaseSettings]) -> list[str]:
    """Every environment variable the model reads (deploy files are checked against it)."""
    prefix = model.model_config.get("env_prefix", "")
    return [prefix.upper() + name.upper() for name in model.model_fields]


def add_flags(parser: argparse.ArgumentParser, model: type[BaseSettings]) -> None:
    """A flag for every setting (--pool-max-size for LEDGER_POOL_MAX_SIZE); an
    absent flag leaves the environment's value."""
    prefix = model.model_config.get("env_prefix", "").upper()
    for name, field in model.model_fields.items():
        flag = "--" + name.replace("_", "-")
        variable = prefix + name.upper()
        help_text = f"{field.description or ''} ({variable})".strip()
        if field.annotation is bool:
            parser.add_argument(flag, dest=name, action="store_const", const="true", help=help_text)
        else:
            parser.add_argument(flag, dest=name, metavar=name.upper(), help=help_text)


def load(model: type[S], flags: argparse.Namespace | None = None) -> S:
    """The model from the environment, flags winning; SettingsError on any wrong value."""
    given = {
        name: value
        for name in model.model_fields
        if (value := getattr(flags, name, None)) is not None
    }
    try:
        return model(**given)
    except ValidationError as error:
        prefix = model.model_config.get("env_prefix", "").upper()
        lines = []
        for problem in error.errors():
            name = str(problem["loc"][0]) if problem["loc"] else ""
            field = model.model_fields.get(name)
            accepted = _accepted(field.annotation) if field is not None else ""
            source = f"--{name.replace('_', '-')}" if name in given else prefix + name.upper()
            value = problem.get("input")
            lines.append(
                f"{source}={value!r}: {problem['msg'].removeprefix('Value error, ')}"
                + (f" (accepted: {accepted})" if accepted else "")
            )
        raise SettingsError("\n".join(lines)) from None


def load_or_exit(parser: argparse.ArgumentParser, model: type[S], flags: argparse.Namespace) -> S:
    """For a command line: the settings, or exit 2 with one line per wrong value;
    the `check-config` command prints them and exits 0."""
    try:
        settings = load(model, flags)
    except SettingsError as error:
        parser.exit(2, f"{parser.prog}: invalid settings:\n{error}\n")
    if getattr(flags, "command", None) == "check-config":
        print("\n".join(describe(settings)))
        raise SystemExit(0)
    return settings


def _accepted(annotation: Any) -> str:
    """What a field accepts, in words an operator can act on."""
    args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    if typing.get_origin(annotation) is typing.Literal:
        return ", ".join(str(arg) for arg in args)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return ", ".join(str(member.value) for member in annotation)
    if annotation in (int, float):
        return f"a number ({annotation.__name__})"
    if annotation is bool:
        return "true or false"
    if args and len(args) == 1:
        return _accepted(args[0])
    return ""


def describe(settings: BaseSettings) -> Iterator[str]:
    """`VARIABLE=value` lines of the effective settings, secrets masked."""
    prefix = settings.model_config.get("env_prefix", "").upper()
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            shown = "****" if value.get_secret_value() else ""
        elif name.endswith("url") and isinstance(value, str):
            shown = _without_password(value)
        elif isinstance(value, enum.Enum):
            shown = str(value.value)
        elif isinstance(value, tuple | frozenset | set):
            shown = ",".join(sorted(str(item) for item in value))
        elif value is None:
            shown = ""
        elif isinstance(value, Path):
            shown = str(value)
        else:
            shown = str(value)
        yield f"{prefix}{name.upper()}={shown}"


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":****@")
    return urlunsplit(parts._replace(netloc=netloc))

"""Request bodies of the commands, generated from the commands themselves (`ledger.commands`).

A command's fields are written once, in its class. Its HTTP body is made from them by `body_of`:
the same fields, types, ranges and descriptions, less the ones the path gives (`path`), with the
fields whose HTTP form differs replaced (`signature=SignatureIn`: a meaning and a password, where
the ledger takes a `Signature`), some renamed (`aliases`), unknown fields refused. Shape errors are
then ordinary request validation errors (422 naming `body.<field>`); business rules stay the
ledger's (409).

A route declares its body as an `Annotated` alias, like its other dependencies:

    ReleaseLotIn = Annotated[Body, body_of(ReleaseLot, path={"lot_id"}, signature=SignatureIn)]

and hands it with the path's values to `Writer` (api/commands.py), which builds the command.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Collection, Mapping
from typing import Any, ClassVar

from fastapi import Depends
from pydantic import BaseModel, ConfigDict, create_model

from ledger.commands import Command


class Body(BaseModel):
    """A request body generated from a command by `body_of`; `command` is the command it builds."""

    model_config = ConfigDict(extra="forbid")

    command: ClassVar[type[Command]]


def body_of(
    command: type[Command],
    *,
    path: Collection[str] = (),
    aliases: Mapping[str, str] | None = None,
    model_name: str | None = None,
    **http: Any,
) -> Any:
    """The request body of `command` as a FastAPI dependency (for `Annotated[Body, body_of(...)]`).

    `path`: fields the URL gives, left out of the body. `aliases`: a field's name in the body where it
    differs. `http`: a field's HTTP type where it differs (its default stays the command's), or a new
    field as `(type, default)`. `model_name`: the body's name in the OpenAPI document (default: the
    command's)."""
    return Depends(_Parse(model_of(command, path=path, aliases=aliases, model_name=model_name, **http)))


def model_of(
    command: type[Command],
    *,
    path: Collection[str] = (),
    aliases: Mapping[str, str] | None = None,
    model_name: str | None = None,
    **http: Any,
) -> type[Body]:
    """The body model of `command` (see `body_of`)."""
    fields: dict[str, Any] = {}
    for name, info in command.model_fields.items():
        if name in path:
            continue
        info = copy.copy(info)
        if aliases and name in aliases:
            info.alias = info.validation_alias = aliases[name]
            info.alias_priority = 2
        fields[name] = (http.pop(name) if name in http else info.annotation, info)
    fields.update(http)
    model: type[Body] = create_model(
        model_name or command.__name__,
        __base__=Body,
        __module__=__name__,
        __doc__=command.__doc__,
        **fields,
    )
    model.command = command
    return model


class _Parse:
    """A dependency whose one parameter is the body `model` (FastAPI reads `__signature__`)."""

    def __init__(self, model: type[Body]) -> None:
        self.model = model
        body = inspect.Parameter("body", inspect.Parameter.KEYWORD_ONLY, annotation=model)
        self.__signature__ = inspect.Signature([body])

    def __call__(self, body: Body) -> Body:
        return body

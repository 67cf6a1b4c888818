"""Error shapes: a 4xx names the field at fault; nothing ever answers with a stack trace."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)


def _field(loc: tuple[Any, ...]) -> str:
    # ("body", "severity") -> "severity"; ("query", "limit") -> "limit"; keep list indexes.
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie", "form"}:
        parts = parts[1:]
    return ".".join(parts) or str(loc[0] if loc else "request")


def describe(errors: list[Any]) -> list[dict[str, Any]]:
    """Pydantic errors without the submitted values (they may hold passwords)."""
    out = []
    for err in errors:
        loc = tuple(err.get("loc", ()))
        out.append(
            {
                "field": _field(loc),
                "loc": [str(p) for p in loc],
                "message": str(err.get("msg", "invalid")),
                "type": str(err.get("type", "value_error")),
            }
        )
    return out


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = describe(list(exc.errors()))
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return JSONResponse(
        status_code=422,
        content={"detail": f"invalid request: {summary}", "errors": errors},
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(
        status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
        content={"detail": "internal error; it has been logged"},
    )


#: PostgreSQL's character_not_in_repertoire: its text cannot hold a NUL character (SQLite can).
_NUL_IN_TEXT = "22021"


async def _database(request: Request, exc: Exception) -> JSONResponse:
    """A NUL character anywhere in a request (path, query, body) fails in PostgreSQL: that is
    the request's fault, a 422. Any other database error stays a 500 (logged)."""
    assert isinstance(exc, DBAPIError)
    if getattr(exc.orig, "sqlstate", None) != _NUL_IN_TEXT:
        raise exc
    message = "text may not contain a NUL character (\\u0000)"
    return JSONResponse(
        status_code=422,
        content={
            "detail": f"invalid request: {message}",
            "errors": [{"field": "request", "loc": ["request"], "message": message}],
        },
    )


class LedgerRowsError(Exception):
    """Rows of an uploaded CSV ledger with problems (gateway.registry RowError-like objects)."""

    def __init__(self, errors: Sequence[Any]) -> None:
        super().__init__(f"{len(errors)} ledger rows with problems")
        self.errors = list(errors)


async def _ledger_rows(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LedgerRowsError)
    errors = [
        {
            "field": f"rows.{e.row}.{e.column}" if e.column else f"rows.{e.row}",
            "loc": ["file", "rows", str(e.row), e.column],
            "message": e.message,
        }
        for e in exc.errors
    ]
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    return JSONResponse(
        status_code=422,
        content={"detail": f"invalid ledger: {summary}", "errors": errors},
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(FieldError, _field_error)
    app.add_exception_handler(LedgerRowsError, _ledger_rows)
    app.add_exception_handler(DBAPIError, _database)
    app.add_exception_handler(Exception, _unexpected)
    _declare_error_body(app)


#: The body of every 422 (and of the other 4xx a :class:`FieldError` makes), as sent above.
ERROR_BODY: dict[str, Any] = {
    "title": "ErrorBody",
    "type": "object",
    "required": ["detail", "errors"],
    "properties": {
        "detail": {"type": "string", "description": "one line naming each field at fault"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "loc", "message"],
                "properties": {
                    "field": {"type": "string", "description": "e.g. 'limit', 'rows.3.grid'"},
                    "loc": {"type": "array", "items": {"type": "string"}},
                    "message": {"type": "string"},
                    "type": {"type": "string", "description": "the validation error kind"},
                },
            },
        },
    },
}


def _declare_error_body(app: FastAPI) -> None:
    """The OpenAPI schema declares FastAPI's default 422 body (``detail`` a list); ours has
    ``detail`` a string and the list in ``errors``. Declare what clients really get."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            components = schema.get("components", {}).get("schemas", {})
            if "HTTPValidationError" in components:
                components["HTTPValidationError"] = ERROR_BODY
                components.pop("ValidationError", None)  # referenced by the default only
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


class FieldError(Exception):
    """A 4xx naming one field, for checks done after validation (CSV rows, references)."""

    def __init__(self, field: str, message: str, status_code: int = 422) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status_code = status_code


async def _field_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FieldError)
    return JSONResponse(
        status_code=exc.status_code,
        content={
            "detail": f"invalid request: {exc.field}: {exc.message}",
            "errors": [{"field": exc.field, "loc": exc.field.split("."), "message": exc.message}],
        },
    )

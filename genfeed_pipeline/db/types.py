"""Column types that keep money exact on every database the pipeline supports, and the JSON text they
are written as."""

from __future__ import annotations

from datetime import UTC
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from genfeed_pipeline.exact_json import dumps as json_text
from genfeed_pipeline.exact_json import loads

__all__ = ["DecimalJSON", "ExactDecimal", "UtcDateTime", "decimal_json_value", "json_text"]


def decimal_json_value(text: str) -> Any:
    """JSON text parsed with every fractional number as an exact `Decimal` (integers stay `int`).

    Text that is not standard JSON (the app may store anything in its own rows on SQLite) comes back as
    it is, so that reading a row never fails because of it.
    """
    try:
        return loads(text)
    except (ValueError, RecursionError):
        return text


class _DecimalJSONText(sa.types.TypeDecorator[Any]):
    impl = sa.Text
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return decimal_json_value(value) if isinstance(value, str) else value


class DecimalJSON(sa.types.TypeDecorator[Any]):
    """JSON whose numbers read back exactly: `0.083334` is `Decimal("0.083334")`, never a binary float.

    The engine's JSON deserializer (orjson, floats) stays as it is for the large schema columns; a SELECT of
    this column reads its text instead and parses that. Written through the engine's serializer
    (`json_text`); Python `None` is SQL NULL.
    """

    impl = sa.JSON(none_as_null=True)
    cache_ok = True

    def column_expression(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return sa.type_coerce(sa.cast(column, sa.Text), _DecimalJSONText())


class ExactDecimal(sa.types.TypeDecorator[Decimal]):
    """NUMERIC on PostgreSQL; on SQLite, where NUMERIC means a binary float, the decimal's text.

    A `Decimal("0.0834")` written on either database reads back as exactly `Decimal("0.0834")`.
    """

    impl = sa.Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(64))
        return dialect.type_descriptor(sa.Numeric(asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = value if isinstance(value, Decimal) else Decimal(str(value))
        return format(value, "f") if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(str(value))


class UtcDateTime(sa.types.TypeDecorator):
    """Timezone-aware UTC timestamps on both databases (SQLite stores them as naive text)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

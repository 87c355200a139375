"""Money in the `models` table's JSON columns (`pricing`, `rate_card`), on real SQLite and PostgreSQL.

GenFeed's app bills from `pricing`: every price is stored as a JSON number written as its exact decimal
text, never a string and never through a binary float, and reads back as that `Decimal`. Migration 0005
turns the string prices of earlier syncs into numbers on the pipeline's rows and leaves the app's rows
byte for byte as they are.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from genfeed_pipeline.db import tables
from genfeed_pipeline.db.engine import create_catalog_engine
from genfeed_pipeline.db.migrate import current_revision, head_revision, upgrade_to_head
from genfeed_pipeline.db.types import json_text
from genfeed_pipeline.sync.store import COPY_THRESHOLD, insert_rows, load_rows

PRICING = {"image": Decimal("0.083334"), "perMegapixel": Decimal("0.083334"), "unit": "megapixel"}
MORE_DIGITS_THAN_A_FLOAT = Decimal("0.1000000000000000055511151231257827")
BIG = Decimal("12345.6789012345")
RATE_CARD = {
    "version": 1,
    "currency": "USD",
    "unit": "megapixel",
    "unit_price": Decimal("0.025"),
    "quantity": {
        "kind": "megapixel",
        "size_input": "image_size",
        "count_input": "num_images",
        "default_size": {"width": 1024, "height": 768},
        "presets": {"square_hd": [1024, 1024], "landscape_16_9": [1024, 576]},
        "per": Decimal("1048576"),
    },
    "price": {"margin": Decimal("0.70"), "min_price": Decimal("0.001"), "step": Decimal("0.0001")},
    "confidence": "exact",
    "flags": [],
    "tiers": [{"up_to": Decimal("1.5"), "unit_price": MORE_DIGITS_THAN_A_FLOAT}, {"up_to": None}],
    "exact": True,
}


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'genfeed.sqlite3'}"
    else:
        yield request.getfixturevalue("postgres_url")


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    """An engine on a fresh database at the newest revision."""
    engine = create_catalog_engine(database_url)
    upgrade_to_head(engine)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def postgres_engine(postgres_url: str) -> Iterator[sa.Engine]:
    engine = create_catalog_engine(postgres_url)
    upgrade_to_head(engine)
    try:
        yield engine
    finally:
        engine.dispose()


def managed_row(endpoint_id: str, **values: Any) -> dict[str, Any]:
    return {
        "id": endpoint_id,
        "name": endpoint_id,
        "provider": "fal",
        "category": "image",
        "enabled": True,
        "managed_by": tables.MANAGED_BY_PIPELINE,
        **values,
    }


def raw_text(connection: sa.Connection, column: str = "pricing") -> dict[str, str | None]:
    """The column's stored text by row id, as the app's driver sees it: no JSON parsing on the way."""
    selected = f"{column}::text" if connection.dialect.name == "postgresql" else column
    return dict(connection.execute(sa.text(f"SELECT id, {selected} FROM models")).all())


def exact(text: str) -> Any:
    return json.loads(text, parse_float=Decimal)


def strings_in(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in strings_in(item) if key != "unit"]
    if isinstance(value, list):
        return [s for item in value for s in strings_in(item)]
    return [value] if isinstance(value, str) else []


def assert_exactly(actual: Any, expected: Any, path: str = "$") -> None:
    """`actual` is `expected` with every fractional number an equal Decimal (never a float); a whole
    Decimal such as `Decimal("2E+1")` is written as `20` and may read back as the int."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and actual.keys() == expected.keys(), path
        for key, value in expected.items():
            assert_exactly(actual[key], value, f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), path
        for index, (item, value) in enumerate(zip(actual, expected, strict=True)):
            assert_exactly(item, value, f"{path}[{index}]")
    elif isinstance(expected, Decimal) and expected == expected.to_integral_value():
        assert type(actual) in (int, Decimal) and actual == expected, (path, actual)
    else:
        assert type(actual) is type(expected) and actual == expected, (path, actual)


# -- the text written ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("0.083334"), "0.083334"),
        (Decimal("0.0834000"), "0.0834"),
        (Decimal("2E+1"), "20"),
        (Decimal("20"), "20"),
        (Decimal("1E-7"), "0.0000001"),
        (Decimal("0E-10"), "0"),
        (Decimal("-0.00"), "0"),
        (Decimal("-1.50"), "-1.5"),
        (MORE_DIGITS_THAN_A_FLOAT, "0.1000000000000000055511151231257827"),
        (BIG, "12345.6789012345"),
        (Decimal("123456789012345678901234567890.12345"), "123456789012345678901234567890.12345"),
    ],
)
def test_a_decimal_is_written_as_its_exact_number_text(value: Decimal, text: str) -> None:
    assert json_text({"price": value}) == f'{{"price":{text}}}'
    assert json_text([value]) == f"[{text}]"


def test_everything_else_is_written_as_before() -> None:
    value = {
        "schema": {"type": "object", "default": 0.1, "max": 10, "enum": ["a", None, True]},
        "seen": datetime(2026, 4, 26, 6, 0, tzinfo=UTC),
        "odd": {1, 2},
        "path": Path("/tmp/x"),
    }
    assert json_text(value) == orjson.dumps(value, default=str).decode()


@pytest.mark.parametrize("value", ["NaN", "-NaN", "sNaN", "Infinity", "-Infinity"])
def test_a_non_finite_decimal_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="finite decimal") as refused:
        json_text({"pricing": {"image": Decimal(value)}})
    assert type(refused.value) is ValueError and value.lstrip("-") in str(refused.value)


def test_a_non_finite_decimal_is_refused_on_write_and_nothing_is_written(engine: sa.Engine) -> None:
    """SQLAlchemy wraps the ValueError on SQLite (bind processing); psycopg raises it as it is."""
    for column in ("pricing", "rate_card"):
        row = managed_row("fal-ai/nan", **{column: {"x": Decimal("NaN")}})
        with pytest.raises((ValueError, sa.exc.StatementError)) as refused, engine.begin() as connection:
            connection.execute(tables.models.insert(), [row])
        error = refused.value
        cause = error.orig if isinstance(error, sa.exc.StatementError) else error
        assert isinstance(cause, ValueError) and "Decimal('NaN')" in str(cause), error
        assert "money must be a finite decimal" in str(cause)
    with engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(tables.models)).scalar_one() == 0


def test_a_non_finite_decimal_is_refused_by_the_copy_path(postgres_engine: sa.Engine) -> None:
    rows = [managed_row(f"fal-ai/m{i}", pricing={"image": Decimal("0.01")}) for i in range(COPY_THRESHOLD)]
    rows[-1]["rate_card"] = {"unit_price": Decimal("Infinity")}
    with pytest.raises(ValueError, match="finite decimal"), postgres_engine.begin() as connection:
        insert_rows(connection, tables.models, rows)
    with postgres_engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(tables.models)).scalar_one() == 0


# -- round trips --------------------------------------------------------------------------------------


def test_pricing_is_stored_as_json_numbers_and_reads_back_as_exact_decimals(engine: sa.Engine) -> None:
    rows = [
        managed_row("fal-ai/flux/dev", pricing=PRICING),
        managed_row("fal-ai/precise", pricing={"perUnit": MORE_DIGITS_THAN_A_FLOAT, "unit": "second"}),
        managed_row("fal-ai/big", pricing={"perCall": BIG, "input": Decimal("2E+1")}),
    ]
    with engine.begin() as connection:
        connection.execute(tables.models.insert(), rows)
    with engine.connect() as connection:
        raw = raw_text(connection)
        read = dict(connection.execute(sa.select(tables.models.c.id, tables.models.c.pricing)).all())

    assert '"image":0.083334' in raw["fal-ai/flux/dev"] and '"0.083334"' not in raw["fal-ai/flux/dev"]
    for row in rows:
        stored = exact(raw[row["id"]])
        assert not strings_in(stored), raw[row["id"]]
        assert_exactly(stored, row["pricing"])
        assert_exactly(read[row["id"]], row["pricing"])
    assert read["fal-ai/flux/dev"]["unit"] == "megapixel"
    assert str(read["fal-ai/precise"]["perUnit"]) == "0.1000000000000000055511151231257827"
    assert str(read["fal-ai/big"]["perCall"]) == "12345.6789012345"
    assert read["fal-ai/big"]["input"] == 20


def test_rate_card_round_trips_nested_objects_lists_and_decimals(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        connection.execute(tables.models.insert(), [managed_row("fal-ai/flux/dev", rate_card=RATE_CARD)])
    with engine.connect() as connection:
        stored = exact(raw_text(connection, "rate_card")["fal-ai/flux/dev"])
        row = connection.execute(sa.select(tables.models)).one()
    assert_exactly(stored, RATE_CARD)
    assert_exactly(row.rate_card, RATE_CARD)
    assert row.rate_card["price"]["margin"] == Decimal("0.7") and row.rate_card["version"] == 1
    assert row.rate_card["tiers"][0]["unit_price"] == MORE_DIGITS_THAN_A_FLOAT


def test_none_is_sql_null(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        connection.execute(tables.models.insert(), [managed_row("fal-ai/unpriced", pricing=None)])
    with engine.connect() as connection:
        assert raw_text(connection)["fal-ai/unpriced"] is None
        assert raw_text(connection, "rate_card")["fal-ai/unpriced"] is None
        assert connection.execute(sa.select(tables.models.c.pricing)).scalar_one() is None


def test_the_copy_path_writes_the_same_text_as_the_engine(engine: sa.Engine) -> None:
    """Inserts of COPY_THRESHOLD rows or more go through COPY on PostgreSQL; one row goes through the
    engine's serializer. Both hold the same text."""
    copied = [
        managed_row(
            f"fal-ai/model-{index}",
            pricing={**PRICING, "perUnit": BIG + index},
            rate_card={**RATE_CARD, "unit_price": Decimal(index) / 1000},
        )
        for index in range(COPY_THRESHOLD + 50)
    ]
    one = managed_row("fal-ai/one", pricing=copied[7]["pricing"], rate_card=copied[7]["rate_card"])
    with engine.begin() as connection:
        insert_rows(connection, tables.models, copied)
        insert_rows(connection, tables.models, [one])
    with engine.connect() as connection:
        pricing, rate_cards = raw_text(connection), raw_text(connection, "rate_card")
        read = {row.id: row for row in connection.execute(sa.select(tables.models))}

    assert (pricing["fal-ai/model-7"], rate_cards["fal-ai/model-7"]) == (
        pricing["fal-ai/one"],
        rate_cards["fal-ai/one"],
    )
    assert pricing["fal-ai/one"] == json_text(one["pricing"])
    for row in copied:
        stored = exact(pricing[row["id"]])
        assert not strings_in(stored) and stored["unit"] == "megapixel"
        assert_exactly(stored, row["pricing"])
        assert_exactly(exact(rate_cards[row["id"]]), row["rate_card"])
        assert_exactly(read[row["id"]].pricing, row["pricing"])
        assert_exactly(read[row["id"]].rate_card, row["rate_card"])
    assert str(read["fal-ai/model-3"].pricing["perUnit"]) == "12348.6789012345"


# -- the app's own rows ---------------------------------------------------------------------------------

APP_INSERT = sa.text(
    "INSERT INTO models (id, name, provider, category, pricing, enabled)"
    " VALUES (:id, :name, 'openai', 'image', :pricing, true)"
)
APP_PRICING_ANY_DATABASE = {
    "app/fixed": ('{"fixedPrice": 0.04}', {"fixedPrice": Decimal("0.04")}),
    "app/string": ('{"image": "0.05", "unit": "image"}', {"image": "0.05", "unit": "image"}),
    "app/list": ("[1, 2.5]", [1, Decimal("2.5")]),
    "app/a-string": ('"cheap"', "cheap"),
    "app/json-null": ("null", None),
    "app/number": ("0.05", Decimal("0.05")),  # SQLite stores a bare number as REAL: float-safe digits
}
APP_PRICING_SQLITE_ONLY = {  # PostgreSQL's JSON type refuses these; SQLite stores whatever it is given
    "app/not-json": ("cheap", "cheap"),
    "app/nan": ('{"image": NaN}', '{"image": NaN}'),
    "app/empty": ("", ""),
    "app/truncated": ('{"image": 0.0', '{"image": 0.0'),
}


def test_whatever_the_app_stored_in_pricing_reads_without_failing(engine: sa.Engine) -> None:
    cases = dict(APP_PRICING_ANY_DATABASE)
    if engine.dialect.name == "sqlite":
        cases |= APP_PRICING_SQLITE_ONLY
    with engine.begin() as connection:
        connection.execute(
            APP_INSERT, [{"id": key, "name": key, "pricing": text} for key, (text, _) in cases.items()]
        )
    with engine.connect() as connection:
        read = dict(connection.execute(sa.select(tables.models.c.id, tables.models.c.pricing)).all())
        rows = load_rows(connection, with_schemas=True)
    for key, (_, expected) in cases.items():
        assert read[key] == expected and type(read[key]) is type(expected), key
        assert rows[key]["pricing"] == expected, key


# -- migration 0005 -------------------------------------------------------------------------------------

SYNCED_BEFORE_0005 = {  # pricing as syncs before 0005 wrote it (orjson with default=str), and after 0005
    "fal-ai/flux/dev": (
        '{"image":"0.083334","perMegapixel":"0.083334","unit":"megapixel"}',
        '{"image":0.083334,"perMegapixel":0.083334,"unit":"megapixel"}',
    ),
    "fal-ai/tiny": ('{"perUnit":"1E-7","unit":"1"}', '{"perUnit":0.0000001,"unit":"1"}'),
    "fal-ai/precise": (
        '{"perCall":"0.1000000000000000055511151231257827"}',
        '{"perCall":0.1000000000000000055511151231257827}',
    ),
    "fal-ai/big": (
        '{"video":"12345.6789012345","perCall":"0E-10"}',
        '{"video":12345.6789012345,"perCall":0}',
    ),
    "fal-ai/mixed": (
        '{"input":0.5,"output":"1.5","note":"about 0.02","perCall":"NaN","perUnit":"1_000","x":" 1"}',
        '{"input":0.5,"output":1.5,"note":"about 0.02","perCall":"NaN","perUnit":"1_000","x":" 1"}',
    ),
    "fal-ai/already-numbers": ('{"image": 0.0834, "unit": "image"}', '{"image": 0.0834, "unit": "image"}'),
    "fal-ai/empty": ("{}", "{}"),
    "fal-ai/json-null": ("null", "null"),
    "fal-ai/sql-null": (None, None),
}
APP_ROWS_ANY_DATABASE = {
    "app/string-prices": ('{"image":"0.05","perMegapixel":"0.05","unit":"megapixel"}', None),
    "app/number-prices": ('{"image": 0.05,  "unit": "image"}', None),
    "app/fixed-string": ('{"fixedPrice": "0.04"}', None),
    "app/fixed-number": ('{"fixedPrice":0.040}', None),
    "app/other-owner": ('{"image":"0.07"}', "genfeed_admin"),  # managed by something else: not ours
}
APP_ROWS_SQLITE_ONLY = {
    "app/not-json": ("0.05 per image", None),
    "app/nan": ('{"image": NaN}', None),
}


def fill_before_0005(engine: sa.Engine) -> None:
    """A database made by revision 0001, written by syncs and by the app, then upgraded to 0004."""
    assert upgrade_to_head(engine, revision="0001") == "0001"
    app_rows = dict(APP_ROWS_ANY_DATABASE)
    if engine.dialect.name == "sqlite":
        app_rows |= APP_ROWS_SQLITE_ONLY
    with engine.begin() as connection:
        connection.execute(
            APP_INSERT, [{"id": key, "name": key, "pricing": text} for key, (text, _) in app_rows.items()]
        )
        connection.execute(
            sa.text("UPDATE models SET managed_by = :managed_by WHERE id = :id"),
            [{"id": key, "managed_by": owner} for key, (_, owner) in app_rows.items() if owner],
        )
        connection.execute(
            sa.text(
                "INSERT INTO models (id, name, provider, category, pricing, enabled, managed_by)"
                " VALUES (:id, :name, 'fal', 'image', :pricing, true, :managed_by)"
            ),
            [
                {"id": key, "name": key, "pricing": before, "managed_by": tables.MANAGED_BY_PIPELINE}
                for key, (before, _) in SYNCED_BEFORE_0005.items()
            ],
        )
    assert upgrade_to_head(engine, revision="0004") == "0004"


def test_migration_0005_turns_string_prices_of_managed_rows_into_numbers(database_url: str) -> None:
    engine = create_catalog_engine(database_url)
    try:
        fill_before_0005(engine)
        with engine.connect() as connection:
            before = raw_text(connection)
        assert "rate_card" not in {c["name"] for c in sa.inspect(engine).get_columns("models")}

        assert upgrade_to_head(engine, revision="0005") == "0005"
        with engine.connect() as connection:
            after = raw_text(connection)
            read = dict(connection.execute(sa.select(tables.models.c.id, tables.models.c.pricing)).all())
            assert set(connection.execute(sa.select(tables.models.c.rate_card)).scalars()) == {None}

        for key, (_, expected) in SYNCED_BEFORE_0005.items():
            assert after[key] == expected, key
        app_ids = set(before) - set(SYNCED_BEFORE_0005)
        assert {key: after[key] for key in app_ids} == {key: before[key] for key in app_ids}
        assert len(app_ids) == len(APP_ROWS_ANY_DATABASE) + (
            len(APP_ROWS_SQLITE_ONLY) if engine.dialect.name == "sqlite" else 0
        )

        flux = exact(after["fal-ai/flux/dev"])
        assert not strings_in(flux) and flux["unit"] == "megapixel"
        assert read["fal-ai/flux/dev"] == PRICING
        assert all(isinstance(read["fal-ai/flux/dev"][key], Decimal) for key in ("image", "perMegapixel"))
        assert str(read["fal-ai/precise"]["perCall"]) == "0.1000000000000000055511151231257827"
        assert read["fal-ai/big"] == {"video": BIG, "perCall": 0}
        assert read["fal-ai/mixed"] == {
            "input": Decimal("0.5"),
            "output": Decimal("1.5"),
            "note": "about 0.02",
            "perCall": "NaN",
            "perUnit": "1_000",
            "x": " 1",
        }
        assert read["app/string-prices"]["image"] == "0.05"  # the app's row: as the app wrote it
        if engine.dialect.name == "sqlite":
            assert read["app/not-json"] == "0.05 per image"

        # Idempotent: the same revision run again (as after a restore of an older alembic_version).
        schema = [(c["name"], str(c["type"])) for c in sa.inspect(engine).get_columns("models")]
        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE alembic_version SET version_num = '0004'"))
        assert upgrade_to_head(engine, revision="0005") == "0005"
        with engine.connect() as connection:
            assert raw_text(connection) == after
        assert [(c["name"], str(c["type"])) for c in sa.inspect(engine).get_columns("models")] == schema
        assert upgrade_to_head(engine) == current_revision(engine) == head_revision()
        with engine.connect() as connection:
            assert raw_text(connection) == after
    finally:
        engine.dispose()

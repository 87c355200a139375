"""Secrets stay secret and fal's text stays text, through faults.

Four refreshes run with the fal key and a webhook secret set, a webhook receiver listening, and fal
answering with hostile text (names, descriptions, units, endpoint ids, `$ref`s and error messages made of
`<script>`, markdown links and images, table pipes), with retries and failures along the way. Then:

- neither the key nor the webhook secret is in any log (Python's, Dagster's event log), metadata, run
  record, the fal cache, a stored asset value, the database, or a webhook message;
- every markdown metadata value shows fal's text escaped: no raw HTML, no live link or image, no stray
  pipe;
- nothing was written outside the data directory, and no endpoint id became a file name.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from pathlib import Path

import dagster as dg
import pytest
from dagster._serdes import serialize_value
from hypothesis import given, settings
from hypothesis import strategies as st

from genfeed_pipeline.report import markdown
from genfeed_pipeline_tests.conftest import TEST_FAL_KEY
from genfeed_pipeline_tests.fal_emulator import MODELS_PATH, PRICING_PATH, Fault, _Response
from genfeed_pipeline_tests.faults_support import (
    DOCUMENTED,
    PRICED,
    WEBHOOK_SECRET,
    Pipeline,
    all_markdown,
    by_id,
    decompressed_asset_values,
    input_component,
    is_list_page,
    is_pricing,
    materialization_metadata,
    open_pipeline,
)
from genfeed_pipeline_tests.webhook_receiver import WebhookReceiver

SECRETS = [TEST_FAL_KEY, TEST_FAL_KEY.split(":", 1)[1], WEBHOOK_SECRET]
HOSTILE = "<script>alert(1)</script> [x](javascript:alert(1)) | pipes | ![img](http://evil/x.png) <img src=x>"
HOSTILE_ID = "evil/<script>alert(1)</script>[x](javascript:alert(1))|![i](http://evil/i.png)"
ESCAPING_ID = "../../../../escape-attempt/../etc/passwd"


def error_body(status: int, error_type: str) -> _Response:
    body = json.dumps({"error": {"type": error_type, "message": f"fal says: {HOSTILE}"}}).encode()
    return _Response(status, body)


class HostileRuns:
    """The four refreshes; `results` in order."""

    def __init__(self, pipeline: Pipeline, receiver: WebhookReceiver) -> None:
        self.pipeline = pipeline
        catalog, emulator = pipeline.catalog, pipeline.emulator
        self.results: list[dg.ExecuteInProcessResult] = []

        # A: hostile names, descriptions and ids; one 429 and one 500 on the way.
        for endpoint_id in list(catalog.models)[:5]:
            metadata = catalog.models[endpoint_id] or {}
            catalog.add_model(endpoint_id, {**metadata, "display_name": HOSTILE, "description": HOSTILE})
        for endpoint_id in (HOSTILE_ID, ESCAPING_ID):
            catalog.add_model(
                endpoint_id,
                {**(catalog.models[PRICED] or {}), "display_name": HOSTILE},
                price={"unit_price": "0.002", "unit": "megapixels"},
                openapi=catalog.openapi[PRICED],
            )
        emulator.inject(Fault(kind="status", status=429, retry_after=0.01, times=1, match=is_list_page))
        emulator.inject(Fault(kind="status", status=500, times=1, match=is_pricing))
        self.results.append(pipeline.refresh())

        # B: hostile units and a hostile `$ref` make enabled models invalid: the report recommends disabling
        # them, quoting fal's text.
        catalog.set_price(HOSTILE_ID, "0.002", HOSTILE)
        catalog.set_price(PRICED, "0.003", HOSTILE)
        document = json.loads(json.dumps(catalog.openapi[DOCUMENTED]))
        input_component(document, DOCUMENTED)["properties"]["evil"] = {
            "$ref": f"#/components/schemas/{HOSTILE}"
        }
        catalog.set_openapi(DOCUMENTED, document)
        self.results.append(pipeline.refresh())

        # C: the pricing API refuses the key with a hostile message.
        emulator.raw_routes.append(
            (lambda method, path, query: path == PRICING_PATH, error_body(401, "authorization_error"))
        )
        self.results.append(pipeline.refresh())
        emulator.raw_routes.clear()

        # D: the list fails for good with a hostile message: the run stops at catalog_completeness.
        emulator.raw_routes.append(
            (
                lambda method, path, query: path == MODELS_PATH and "endpoint_id" not in query,
                error_body(400, "validation_error"),
            )
        )
        self.results.append(pipeline.refresh(raise_on_error=False))
        emulator.raw_routes.clear()
        receiver.wait_for(1, timeout=10)


class Collect(logging.Handler):
    """Every Python log record of the runs, at DEBUG (caplog, but for a module-scoped fixture)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory):
    outside = tmp_path_factory.getbasetemp()
    tmp_path = tmp_path_factory.mktemp("hostile")
    files_before = {p for p in outside.rglob("*") if p.is_file()}
    root, collect = logging.getLogger(), Collect()
    level = root.level
    root.addHandler(collect)
    root.setLevel(logging.DEBUG)
    try:
        with WebhookReceiver(secret=WEBHOOK_SECRET) as receiver:
            env = {"GENFEED_WEBHOOK_URLS": receiver.url, "GENFEED_WEBHOOK_SECRET": WEBHOOK_SECRET}
            with open_pipeline(tmp_path / "run", extra_env=env) as pipeline:
                runs = HostileRuns(pipeline, receiver)
                yield runs, receiver, collect.records, files_before, outside, tmp_path
    finally:
        root.removeHandler(collect)
        root.setLevel(level)


def assert_no_secret(text: str | bytes, where: str) -> None:
    for secret in SECRETS:
        needle = secret.encode() if isinstance(text, bytes) else secret
        assert needle not in text, f"a secret appears in {where}"


def test_hostile_runs_did_what_they_should(hostile) -> None:
    runs, receiver, *_ = hostile
    assert [r.success for r in runs.results] == [True, True, True, False]
    assert {r.json["type"] for r in receiver.requests} >= {"catalog.changed"}
    assert all(r.signature_valid for r in receiver.requests)
    rows = by_id(runs.pipeline.snapshot())
    assert HOSTILE_ID in rows and ESCAPING_ID in rows and rows[PRICED]["unit_raw"] == HOSTILE


def test_no_secret_in_logs_metadata_cache_values_tables_or_webhooks(hostile) -> None:
    runs, receiver, records, *_ = hostile
    pipeline = runs.pipeline
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in records)
    assert_no_secret(logged, "the Python log")
    assert "retrying" in logged and "HTTP 500" in logged, "the faults were logged (and captured)"
    dagster_log = []
    for result in runs.results:
        entries = pipeline.instance.all_logs(result.run_id)
        assert entries
        for entry in entries:
            dagster_log.append(serialize_value(entry))
            assert_no_secret(dagster_log[-1], f"Dagster's event log of run {result.run_id}")
        assert_no_secret(serialize_value(pipeline.instance.get_run_by_id(result.run_id)), "the run record")
        for event in result.get_asset_materialization_events():
            metadata = event.step_materialization_data.materialization.metadata
            assert_no_secret(serialize_value(metadata), f"metadata of {event.asset_key.to_user_string()}")
    assert any("refused the key" in text for text in dagster_log), "the 401 was logged (and checked)"
    cache = pipeline.data_dir / "fal_cache.sqlite3"
    assert cache.exists()
    assert_no_secret(cache.read_bytes(), "the fal cache")
    values = decompressed_asset_values(pipeline.data_dir)
    assert len(values) >= 5
    for name, payload in values.items():
        assert_no_secret(payload, f"the stored value {name}")
    pipeline.engine.dispose()
    assert_no_secret(Path(pipeline.database_url.removeprefix("sqlite:///")).read_bytes(), "the database file")
    assert_no_secret(repr(pipeline.snapshot()), "the catalog tables")
    assert receiver.requests
    for request in receiver.requests:
        assert_no_secret(request.body, "a webhook body")
        assert_no_secret(json.dumps(request.headers), "webhook headers")


UNESCAPED = {
    "raw <script": re.compile(r"<script", re.IGNORECASE),
    "raw <img": re.compile(r"<img", re.IGNORECASE),
    "a live link or image `](`": re.compile(r"(?<!\\)\]\("),
    "an image `![`": re.compile(r"(?<!\\)!\\?\["),
    "fal's table pipes": re.compile(r"(?<!\\)\| pipes (?<!\\)\|"),
}


PIPELINE_IMAGE = re.compile(r"!\[([^\]\[()<>]*)\]\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)")


def without_pipeline_images(key: str, md: str) -> str:
    """The pipeline's own charts (SVG data URIs) are images by design; their labels must not be fal's text."""

    def check(match: re.Match) -> str:
        svg = base64.b64decode(match.group(2)).decode()
        assert "<script" not in svg.lower() and "javascript" not in svg and "evil" not in svg, f"{key}: {svg}"
        return "(chart)"

    return PIPELINE_IMAGE.sub(check, md)


def test_fal_text_in_markdown_metadata_is_escaped(hostile) -> None:
    runs, *_ = hostile
    shown: dict[str, str] = {}
    for index, result in enumerate(runs.results):
        for key, value in all_markdown(result).items():
            shown[f"run {index}: {key}"] = without_pipeline_images(key, value)
    fal_text = {key: md for key, md in shown.items() if "javascript" in md}
    # fal's text reached every kind of markdown the brief names: the test is not vacuous
    for where in ("genfeed_models.invalid_reasons", "profitability_report.summary", "fal_model_list.notes"):
        assert any(where in key for key in fal_text), f"no hostile text reached {where}"
    assert any("list_errors" in key for key in fal_text)
    for key, md in shown.items():
        for what, pattern in UNESCAPED.items():
            assert not pattern.search(md), f"{key} shows {what}: {md[:300]!r}"


def test_the_models_table_warnings_are_escaped_too(hostile) -> None:
    runs, *_ = hostile
    for result in runs.results[:3]:
        warnings = materialization_metadata(result, "models_table")["warnings"].md_str
        assert "<" not in warnings and not re.search(r"(?<!\\)\]\(", warnings)


def test_nothing_is_written_outside_the_data_directory(hostile) -> None:
    runs, _, _, files_before, outside, tmp_path = hostile
    created = {p for p in outside.rglob("*") if p.is_file()} - files_before
    strays = sorted(str(p) for p in created if not p.is_relative_to(tmp_path))
    assert strays == []
    data_dir = runs.pipeline.data_dir
    inside = sorted(str(p.relative_to(data_dir)) for p in data_dir.rglob("*") if p.is_file())
    assert all(
        name == "fal_cache.sqlite3" or re.fullmatch(r"asset_values/[a-z_]+\.json\.gz", name)
        for name in inside
    )
    assert not any("passwd" in str(p) or "escape-attempt" in str(p) for p in created)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200) | st.sampled_from([HOSTILE, HOSTILE_ID, "a](b", "![", "<<script>>", "|x|"]))
def test_escaped_text_never_carries_markup(text: str) -> None:
    escaped = markdown.escape(text)
    assert "<" not in escaped and ">" not in escaped.replace("&gt;", "")
    for pattern in list(UNESCAPED.values())[2:]:
        assert not pattern.search(escaped)
    assert "\n" not in escaped
    table = markdown.table([(text, text)], ["a", "b"])
    assert table.count("\n") == 2, "a cell never breaks out of its row"
    assert len(re.findall(r"(?<!\\)\|", table.splitlines()[2])) == 3, "a cell never adds a column"

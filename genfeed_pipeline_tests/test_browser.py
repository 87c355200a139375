"""The operator's view in a real browser: launch `refresh_fal_catalog` from the Dagster UI, read the result;
backfill three days of fal usage from the UI and read their plots.

Uses Debian's `chromium` and `chromium-driver` (installed by `.ci/run`), never a downloaded browser. Starts
the fal emulator and `dagster dev` (webserver and daemon) on 127.0.0.1, opens the UI headless, launches the
job from the launchpad, follows the run it launched (its id from the URL) to success, and reads from the
pages that the emulated catalog's 1,182 fal models were synced and that `unique_endpoint_ids` passed. The
run's status and its check result are also read from the UI's own GraphQL API, by that run id, so that no
other run's result can stand in for it. Screenshots land in `test-artifacts/browser/` (the usage backfill's
in `test-artifacts/browser/usage/`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from genfeed_pipeline_tests.conftest import IN_CI, TEST_FAL_KEY
from genfeed_pipeline_tests.fal_emulator import DEFAULT_ADMIN_KEY, to_decimal
from genfeed_pipeline_tests.faults_support import Pipeline, open_pipeline

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts" / "browser"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
USAGE_ARTIFACTS = ARTIFACTS / "usage"


def _require_browser() -> None:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).exists()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    if missing:
        message = f"browser test needs Debian's chromium and chromium-driver (missing: {', '.join(missing)})"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(url: str, timeout: float, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{url} process exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} did not come up in {timeout}s: {log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@contextlib.contextmanager
def _dagster_dev(root: Path, env: dict[str, str], artifacts: Path) -> Iterator[tuple[str, Path]]:
    """`dagster dev` (webserver and daemon) on a free port with its own `DAGSTER_HOME` under `root`, the
    pipeline configured by `env` alone; yields the UI's URL and the home. Its log is kept in `artifacts`."""
    ui_port = _free_port()
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    logs = root / "logs"
    logs.mkdir(exist_ok=True)
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GENFEED_", "FAL_", "DAGSTER_"))},
        **env,
        "DAGSTER_HOME": str(home),
    }
    log_path = logs / "dagster.log"
    log = log_path.open("w")
    dagster = subprocess.Popen(
        [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml",
         "-h", "127.0.0.1", "-p", str(ui_port)],
        cwd=REPO, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        _wait_for(f"http://127.0.0.1:{ui_port}/server_info", 120, dagster, log_path)
        yield f"http://127.0.0.1:{ui_port}", home
    finally:
        _stop(dagster)
        log.close()
        artifacts.mkdir(parents=True, exist_ok=True)
        shutil.copy(log_path, artifacts / "dagster-dev.log")


@pytest.fixture
def dagster_ui(tmp_path: Path) -> Iterator[str]:
    _require_browser()
    fal_port = _free_port()
    logs = tmp_path / "logs"
    logs.mkdir()
    emulator_log = (logs / "emulator.log").open("w")
    emulator = subprocess.Popen(
        [sys.executable, "-m", "genfeed_pipeline_tests.fal_emulator", "--port", str(fal_port),
         "--api-key", TEST_FAL_KEY],
        cwd=REPO, stdout=emulator_log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    env = {
        "FAL_KEY": TEST_FAL_KEY,
        "FAL_API_BASE_URL": f"http://127.0.0.1:{fal_port}/v1",
        "FAL_OPENAPI_URL": f"http://127.0.0.1:{fal_port}/api/openapi/queue/openapi.json",
        "GENFEED_DATA_DIR": str(tmp_path / "data"),
        "GENFEED_DATABASE_URL": f"sqlite:///{tmp_path / 'genfeed.sqlite3'}",
    }
    try:
        _wait_for(f"http://127.0.0.1:{fal_port}/v1/models?limit=1", 30, emulator, logs / "emulator.log")
        with _dagster_dev(tmp_path, env, ARTIFACTS) as (ui, _):
            yield ui
    finally:
        _stop(emulator)
        emulator_log.close()


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1600,1200"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def _wait_text(driver, pattern: str, timeout: float) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = re.search(pattern, driver.find_element("tag name", "body").text)
        if match:
            return match
        time.sleep(1)
    raise AssertionError(
        f"{pattern!r} never appeared; the page says:\n{driver.find_element('tag name', 'body').text[:3000]}"
    )


RUN_URL = re.compile(r"/runs/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")
RUN_STATUS = "query ($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"
CHECK_EXECUTIONS = """query ($check: String!) {
  assetCheckExecutions(assetKey: {path: ["models_table"]}, checkName: $check, limit: 20) {
    runId status evaluation { success }
  }
}"""


def _graphql(ui: str, query: str, **variables: str) -> dict:
    response = httpx.post(f"{ui}/graphql", json={"query": query, "variables": variables}, timeout=30)
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def _launched_run_id(driver) -> str:
    """The launchpad opens the page of the run it launched: `/runs/<run id>`."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        match = RUN_URL.search(driver.current_url)
        if match:
            return match.group(1)
        time.sleep(0.5)
    raise AssertionError(f"the launchpad did not open a run page; the browser is at {driver.current_url}")


def _run_status(ui: str, run_id: str, timeout: float) -> str:
    """The run's status once it has finished (or whatever it is when `timeout` runs out)."""
    deadline = time.monotonic() + timeout
    while True:
        status = _graphql(ui, RUN_STATUS, id=run_id)["runOrError"]["status"]
        if status in {"SUCCESS", "FAILURE", "CANCELED"} or time.monotonic() > deadline:
            return status
        time.sleep(2)


def test_launch_refresh_from_the_ui_and_read_the_result(dagster_ui: str) -> None:
    from selenium.webdriver.common.by import By

    os.environ.setdefault("SE_OFFLINE", "true")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver = _browser()
    try:
        driver.get(f"{dagster_ui}/locations/genfeed_pipeline/jobs/refresh_fal_catalog/playground")
        _click_button(driver, "Launch run", timeout=90, screenshot=ARTIFACTS / "1-launchpad.png")
        run_id = _launched_run_id(driver)
        assert _run_status(dagster_ui, run_id, timeout=300) == "SUCCESS"
        driver.get(f"{dagster_ui}/runs/{run_id}")
        _wait_text(driver, r"\bSuccess\b", timeout=60)
        driver.save_screenshot(str(ARTIFACTS / "2-run-succeeded.png"))

        driver.get(f"{dagster_ui}/assets/models_table")
        new_models = _wait_text(driver, r"\nnew\n[^\n]*\n([\d,]+)\n", timeout=60)
        synced_rows = _wait_text(driver, r"\ntable_rows\n[^\n]*\n([\d,]+)\n", timeout=10)
        assert int(new_models.group(1).replace(",", "")) == 1182  # the snapshot's endpoints, an empty table
        assert int(synced_rows.group(1).replace(",", "")) == 1182
        driver.save_screenshot(str(ARTIFACTS / "3-models-table.png"))

        driver.get(f"{dagster_ui}/assets/models_table?view=checks")
        _wait_text(driver, r"unique_endpoint_ids", timeout=60)
        checks_page = driver.find_element(By.TAG_NAME, "body").text
        assert "enabled_models_valid_and_priced" in checks_page
        assert re.search(r"unique_endpoint_ids\nSucceeded", checks_page), checks_page[:2000]
        executions = _graphql(dagster_ui, CHECK_EXECUTIONS, check="unique_endpoint_ids")[
            "assetCheckExecutions"
        ]
        ours = [execution for execution in executions if execution["runId"] == run_id]
        assert ours == [{"runId": run_id, "status": "SUCCEEDED", "evaluation": {"success": True}}], executions
        driver.save_screenshot(str(ARTIFACTS / "4-models-table-checks.png"))

        driver.get(f"{dagster_ui}/assets/profitability_report")
        _wait_text(driver, r"Show Markdown", timeout=60)
        driver.find_element(By.XPATH, "//*[contains(text(), 'Show Markdown')]").click()
        _wait_text(driver, r"By type", timeout=20)
        charts = {image.get_attribute("alt") for image in driver.find_elements(By.TAG_NAME, "img")}
        assert {"margin by type", "cost distribution"} <= charts
        driver.save_screenshot(str(ARTIFACTS / "5-profitability-report.png"))
    finally:
        driver.quit()


# -- usage: a three-day backfill launched from the UI ------------------------------------------------------

USAGE_ENDPOINTS = 5
USAGE_PLOTS = ("fal_cost", "revenue_rate_card", "revenue_per_call", "realized_margin")
BACKFILL_URL = re.compile(r"/runs/b/([a-z0-9]+)$")
BACKFILL = """query ($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    ... on PartitionBackfill { status partitionNames assetSelection { path } runs { runId status } }
  }
}"""
BACKFILL_RUNNING = {"REQUESTED", "CANCELING", "FAILING"}


@dataclass(frozen=True)
class UsageUi:
    url: str
    home: Path
    pipeline: Pipeline
    endpoints: list[str]
    days: list[date]  # the days to backfill
    outside: date  # billed by fal too, outside the backfill


@pytest.fixture
def usage_ui(tmp_path: Path) -> Iterator[UsageUi]:
    """The emulator (in this process) with the catalog synced and fal's bill for four past days of a few
    priced endpoints; `dagster dev` with FAL_ADMIN_KEY and partitions from nine days ago. The days end three
    days before today, so they stay partitions if the test crosses midnight UTC."""
    _require_browser()
    today = datetime.now(UTC).date()
    outside, *days = [today - timedelta(days=n) for n in (6, 5, 4, 3)]
    with open_pipeline(
        tmp_path / "pipeline", extra_env={"FAL_ADMIN_KEY": DEFAULT_ADMIN_KEY}, people=False
    ) as pipeline:
        priced = sorted(
            (endpoint_id, price["unit"], to_decimal(price["unit_price"]))
            for endpoint_id, price in pipeline.catalog.prices.items()
            if to_decimal(price["unit_price"]) > 0
        )[:USAGE_ENDPOINTS]
        pipeline.emulator.usage.generate([outside, *days], priced)
        env = {**pipeline.env, "GENFEED_USAGE_START_DATE": (today - timedelta(days=9)).isoformat()}
        with _dagster_dev(tmp_path, env, USAGE_ARTIFACTS) as (url, home):
            yield UsageUi(url, home, pipeline, [endpoint for endpoint, _, _ in priced], days, outside)


def _click_button(driver, label: str, timeout: float = 60, screenshot: Path | None = None) -> None:
    """Clicks the enabled button labelled `label`, dismissing the first-visit community dialog on the way.

    The dialog's backdrop can appear before its buttons do, and fades out after "Skip": a click it
    intercepts is tried again once the page has settled.
    """
    from selenium.common.exceptions import (
        ElementClickInterceptedException,
        StaleElementReferenceException,
    )
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            buttons = driver.find_elements(By.TAG_NAME, "button")
            welcome = next((b for b in buttons if b.text.strip() == "Skip"), None)
            if welcome is not None:
                welcome.click()
                continue
            button = next(
                (b for b in buttons if b.text.strip().lower() == label.lower() and b.is_enabled()), None
            )
            if button is not None:
                if screenshot is not None:
                    driver.save_screenshot(str(screenshot))
                button.click()
                return
        except (StaleElementReferenceException, ElementClickInterceptedException):
            pass
        time.sleep(0.5)
    raise AssertionError(f"no enabled {label!r} button at {driver.current_url}")


def _launched_backfill_id(driver) -> str:
    """The backfill the dialog created: its toast links to `/runs/b/<backfill id>`."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            for link in driver.find_elements(By.TAG_NAME, "a"):
                match = BACKFILL_URL.search(link.get_attribute("href") or "")
                if match:
                    return match.group(1)
        except StaleElementReferenceException:
            pass
        time.sleep(0.2)
    raise AssertionError("launching the backfill showed no 'Created backfill' toast")


def _finished_backfill(ui: str, backfill_id: str, timeout: float) -> dict:
    """The backfill once the daemon has finished it (or as it is when `timeout` runs out)."""
    deadline = time.monotonic() + timeout
    while True:
        backfill = _graphql(ui, BACKFILL, id=backfill_id)["partitionBackfillOrError"]
        if backfill["status"] not in BACKFILL_RUNNING or time.monotonic() > deadline:
            return backfill
        time.sleep(2)


def _materializations(home: Path, asset: str) -> dict[str, dict[str, object]]:
    """Each partition's newest materialization metadata, read from the instance `dagster dev` wrote."""
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        records = instance.fetch_materializations(dg.AssetKey(asset), limit=100).records
        found: dict[str, dict[str, object]] = {}
        for record in reversed(records):  # newest first: the newest of a partition wins
            materialization = record.asset_materialization
            assert materialization is not None
            found[str(materialization.partition)] = {
                name: entry.value for name, entry in materialization.metadata.items()
            }
        assert set(found) == instance.get_materialized_partitions(dg.AssetKey(asset))
        return found


def test_backfill_three_days_of_usage_from_the_ui_and_plot_them(usage_ui: UsageUi) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    os.environ.setdefault("SE_OFFLINE", "true")
    USAGE_ARTIFACTS.mkdir(parents=True, exist_ok=True)
    ui, days = usage_ui.url, [day.isoformat() for day in usage_ui.days]
    driver = _browser()
    try:
        driver.get(f"{ui}/assets/fal_usage?view=partitions")
        _wait_text(driver, r"Materialized \(0\)\n.*\nMissing \(9\)", timeout=60)
        driver.save_screenshot(str(USAGE_ARTIFACTS / "1-fal-usage-partitions-missing.png"))

        # The group's "Materialize all…" selects both assets (an asset's own button selects it alone).
        driver.get(f"{ui}/asset-groups~group%3A%22fal_usage%22")
        _click_button(driver, "Materialize all…")
        _wait_text(driver, r"Launch runs to materialize 2 assets", timeout=30)
        partitions = driver.find_element(
            By.XPATH,
            "//*[normalize-space(text())='Partition selection']"
            "/ancestor::*[.//input[@type='text']][1]//input[@type='text']",
        )
        partitions.click()
        partitions.send_keys(f"[{days[0]}...{days[-1]}]", Keys.ENTER)
        _wait_text(driver, r"Partition selection\n3 partitions\n", timeout=10)
        driver.save_screenshot(str(USAGE_ARTIFACTS / "2-launch-backfill.png"))
        _click_button(driver, "Launch backfill", timeout=10)
        backfill_id = _launched_backfill_id(driver)

        backfill = _finished_backfill(ui, backfill_id, timeout=300)
        assert backfill["status"] == "COMPLETED_SUCCESS", backfill
        assert backfill["partitionNames"] == days
        assert sorted(asset["path"] for asset in backfill["assetSelection"]) == [
            ["fal_usage"],
            ["usage_profitability"],
        ]
        assert [run["status"] for run in backfill["runs"]] == ["SUCCESS"], "single-run policy: one run"
        driver.get(f"{ui}/runs/b/{backfill_id}")
        _wait_text(driver, r"Status\nSucceeded", timeout=60)
        progress = driver.find_element(By.TAG_NAME, "body").text
        for asset in ("fal_usage", "usage_profitability"):
            # targeted, in progress, succeeded, failed
            assert f"{asset}\n100% completed\n3\n0\n3\n0" in progress, progress[-1500:]
        driver.save_screenshot(str(USAGE_ARTIFACTS / "3-backfill-succeeded.png"))

        driver.get(f"{ui}/assets/usage_profitability?view=partitions")
        _wait_text(driver, r"Materialized \(3\)\n.*\nMissing \(6\)", timeout=60)

        driver.get(f"{ui}/assets/usage_profitability")
        _click_button(driver, "Plots")
        _wait_text(driver, r"When graphing values by partition", timeout=30)
        for name in USAGE_PLOTS:
            title = driver.find_element(By.XPATH, f"//span[normalize-space(text())='{name}']")
            plot = title.find_element(By.XPATH, "./ancestor::div[.//canvas][1]")
            driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", plot)
            assert plot.find_element(By.TAG_NAME, "canvas").size["width"] > 100, name
            plot.screenshot(str(USAGE_ARTIFACTS / f"plot-{name}.png"))
        driver.set_window_size(1600, 3000)
        time.sleep(1)
        driver.save_screenshot(str(USAGE_ARTIFACTS / "4-usage-profitability-plots.png"))
    finally:
        driver.quit()

    rows = usage_ui.pipeline.usage_rows()
    assert {row["day"] for row in rows} == set(usage_ui.days), f"fal also billed {usage_ui.outside}"
    assert all(
        row["revenue_rate_card"] is not None and row["revenue_per_call"] is not None for row in rows
    ), "every endpoint is in the catalog, billed in its unit, one unit a day: both readings on every row"
    usage = _materializations(usage_ui.home, "fal_usage")
    profitability = _materializations(usage_ui.home, "usage_profitability")
    assert set(usage) == set(profitability) == set(days)
    for day in usage_ui.days:
        day_rows = [row for row in rows if row["day"] == day]
        assert sorted(row["endpoint_id"] for row in day_rows) == usage_ui.endpoints
        billed = sum(Decimal(str(item["cost_total"])) for item in usage_ui.pipeline.emulator.usage.items(day))
        cost = sum(row["cost_total"] for row in day_rows)
        rate_card = sum(row["revenue_rate_card"] for row in day_rows)
        per_call = sum(row["revenue_per_call"] for row in day_rows)
        assert cost == billed
        assert usage[day.isoformat()]["dagster/row_count"] == len(day_rows)
        plotted = profitability[day.isoformat()]
        assert plotted["fal_cost"] == pytest.approx(float(cost))
        assert plotted["revenue_rate_card"] == pytest.approx(float(rate_card))
        assert plotted["revenue_per_call"] == pytest.approx(float(per_call))
        assert plotted["realized_margin"] == pytest.approx(float((rate_card - cost) / rate_card))

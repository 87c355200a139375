"""The operator's view in a real browser: launch `refresh_fal_catalog` from the Dagster UI, read the result.

Uses Debian's `chromium` and `chromium-driver` (installed by `.ci/run`), never a downloaded browser. Starts
the fal emulator and `dagster dev` on 127.0.0.1, opens the UI headless, launches the job from the
launchpad, follows the run it launched (its id from the URL) to success, and reads from the pages that the
emulated catalog's 1,182 fal models were synced and that `unique_endpoint_ids` passed. The run's status and
its check result are also read from the UI's own GraphQL API, by that run id, so that no other run's result
can stand in for it. Screenshots land in `test-artifacts/browser/`.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from genfeed_pipeline_tests.conftest import IN_CI, TEST_FAL_KEY

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts" / "browser"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


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


@pytest.fixture
def dagster_ui(tmp_path: Path) -> Iterator[str]:
    _require_browser()
    fal_port, ui_port = _free_port(), _free_port()
    logs = tmp_path / "logs"
    logs.mkdir()
    emulator_log = (logs / "emulator.log").open("w")
    emulator = subprocess.Popen(
        [sys.executable, "-m", "genfeed_pipeline_tests.fal_emulator", "--port", str(fal_port),
         "--api-key", TEST_FAL_KEY],
        cwd=REPO, stdout=emulator_log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GENFEED_", "FAL_", "DAGSTER_"))},
        "DAGSTER_HOME": str(home),
        "FAL_KEY": TEST_FAL_KEY,
        "FAL_API_BASE_URL": f"http://127.0.0.1:{fal_port}/v1",
        "FAL_OPENAPI_URL": f"http://127.0.0.1:{fal_port}/api/openapi/queue/openapi.json",
        "GENFEED_DATA_DIR": str(tmp_path / "data"),
        "GENFEED_DATABASE_URL": f"sqlite:///{tmp_path / 'genfeed.sqlite3'}",
    }
    dagster_log_path = logs / "dagster.log"
    dagster_log = dagster_log_path.open("w")
    dagster = subprocess.Popen(
        [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml",
         "-h", "127.0.0.1", "-p", str(ui_port)],
        cwd=REPO, env=env, stdout=dagster_log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        _wait_for(f"http://127.0.0.1:{fal_port}/v1/models?limit=1", 30, emulator, logs / "emulator.log")
        _wait_for(f"http://127.0.0.1:{ui_port}/server_info", 120, dagster, dagster_log_path)
        yield f"http://127.0.0.1:{ui_port}"
    finally:
        _stop(dagster)
        _stop(emulator)
        dagster_log.close()
        emulator_log.close()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(dagster_log_path, ARTIFACTS / "dagster-dev.log")


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


def _click_launch(driver) -> None:
    """Dismisses the first-visit community dialog if it shows, then clicks the launchpad's button."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        time.sleep(1)
        try:
            buttons = driver.find_elements(By.TAG_NAME, "button")
            welcome = next((b for b in buttons if b.text.strip() == "Skip"), None)
            if welcome is not None:
                welcome.click()
                continue
            launch = next(
                (b for b in buttons if b.text.strip().lower() == "launch run" and b.is_enabled()), None
            )
            if launch is not None:
                driver.save_screenshot(str(ARTIFACTS / "1-launchpad.png"))
                launch.click()
                return
        except StaleElementReferenceException:
            continue
    raise AssertionError("no enabled 'Launch run' button on the launchpad")


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
        _click_launch(driver)
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

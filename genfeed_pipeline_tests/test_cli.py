"""`genfeed-catalog` against a synced catalog: every command that reads or operates the table, its output,
its JSON and its errors. `refresh` is tested in `test_cli_refresh.py`, `migrate` in `test_migrations.py`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from genfeed_pipeline.cli import main
from genfeed_pipeline_tests.test_admin_support import (
    APP_ROW,
    DEPRECATED,
    FLUX_DEV,
    HELD,
    INVALID,
    POLICY_OFF,
    REMOVED,
    Catalog,
    catalog_fixture,  # noqa: F401
)

TWO_SQUARE_HD = '{"image_size": "square_hd", "num_images": 2}'
KLING = "fal-ai/kling-video/v2.5-turbo/pro/image-to-video"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str):
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def test_estimate_flux_dev_by_hand(catalog: Catalog, capsys: pytest.CaptureFixture[str]) -> None:
    # $0.025 per megapixel; square_hd is 1024×1024 = 1 MP; 2 images = 2 MP = $0.05.
    # Cloud: $0.05 ÷ (1 − 0.70) = $0.1666… → $0.1667; core: the cost, $0.05.
    estimate = run_json(capsys, "estimate", FLUX_DEV, "--inputs", TWO_SQUARE_HD)
    assert Decimal(estimate["cost"]) == Decimal("0.05") and Decimal(estimate["quantity"]) == 2
    assert Decimal(estimate["cloud_price"]) == Decimal("0.1667")
    assert Decimal(estimate["core_price"]) == Decimal("0.05")
    assert estimate["confidence"] == "exact" and estimate["unit"] == "megapixel"
    assert (
        estimate["derivation"]
        == "1 MP (square_hd: 1024×1024 → ⌈1,048,576 ÷ 1,048,576⌉) × 2 images × $0.025 per megapixel"
    )

    code, out, _ = run(capsys, "estimate", FLUX_DEV, "--inputs", TWO_SQUARE_HD)
    assert code == 0
    assert "cost         $0.05 at fal (exact)" in out
    assert "cloud price  $0.1667 (70.0% margin)" in out and "core price   $0.05" in out

    defaults = run_json(capsys, "estimate", FLUX_DEV)  # landscape_4_3: 0.75 MP → 1 MP, one image
    assert Decimal(defaults["cost"]) == Decimal("0.025") and Decimal(defaults["cloud_price"]) == Decimal(
        "0.0834"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["estimate", "fal-ai/flux/dex"],
            "no model with id 'fal-ai/flux/dex' in the models table; did you mean",
        ),
        (["estimate", FLUX_DEV, "--inputs", "{num_images: 2"], "--inputs is not valid JSON"),
        (["estimate", FLUX_DEV, "--inputs", "[2]"], "must be a JSON object"),
        (["estimate", FLUX_DEV, "--inputs", '{"num_image": 2}'], "has no input 'num_image'"),
        (["estimate", FLUX_DEV, "--inputs", '{"image_size": "huge"}'], "image_size must be one of square_hd"),
        (
            ["estimate", FLUX_DEV, "--inputs", '{"num_images": 1e9}'],
            "num_images must be an integer from 1 to 4, not 1000000000",
        ),
        (
            ["estimate", FLUX_DEV, "--inputs", '{"image_size": {"width": -5, "height": 512}}'],
            "image_size.width must be an integer of at least 1, not -5",
        ),
        (["estimate", KLING, "--inputs", '{"duration": "abc"}'], "duration must be one of 5, 10, not 'abc'"),
        (["estimate", INVALID], "has no rate card in the models table"),
        (
            ["cheapest", "--type", "image", "--inputs", '{"num_images": 1000000000}'],
            "num_images must be an integer from 1 to 4, not 1000000000",
        ),
        (["show", "nope/nope"], "no model with id 'nope/nope'"),
        (["list", "--capability", "sed"], "unknown capability sed"),
        (["list", "--min-price", "abc"], "min price must be a price"),
        (["disable", "--reason", "x"], "by endpoint id or by a filter"),
        (["enable", HELD, "--reason", "x"], "held for review"),
        (["enable", REMOVED, "--reason", "x"], "removed from fal's catalog"),
        (["accept", "fal-ai/nope"], "no model with id 'fal-ai/nope'"),
    ],
)
def test_bad_input_exits_non_zero_with_a_clear_message(
    catalog: Catalog, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 1 and out == ""
    assert err.startswith(f"genfeed-catalog {argv[0]}: error: ") and message in err
    assert catalog.audit() == []


def test_list_filters_and_json(catalog: Catalog, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "list", "--owner", "bria", "--type", "image", "--max-price", "0.2")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["id", "type", "unit", "price_per_call", "enabled", "status"]
    assert lines[2].split() == ["bria/fibo/generate", "image", "image", "0.1334", "yes", "active"]
    assert lines[-1] == "3 models (3 enabled) matching category=image, owner=bria, max_price=0.2"

    listed = run_json(
        capsys, "list", "--type", "image", "--capability", "seed", "--capability", "lora", "--enabled"
    )
    assert listed and all("seed" in m["capabilities"] and "lora" in m["capabilities"] for m in listed)
    assert all(m["enabled"] and m["type"] == "image" for m in listed)
    held = run_json(capsys, "list", "--held")
    assert [m["id"] for m in held] == [HELD] and held[0]["status"] == "active (held)"
    removed = run_json(capsys, "list", "--status", "removed")
    assert [m["id"] for m in removed] == [REMOVED]
    found = run_json(capsys, "list", "--search", "FLUX.1 [dev]", "--fal-category", "text-to-image")
    assert FLUX_DEV in {m["id"] for m in found}
    priced = run_json(capsys, "list", "--min-price", "1", "--max-price", "1.5", "--type", "video")
    assert priced and all(Decimal("1") <= Decimal(m["price_per_call"]) <= Decimal("1.5") for m in priced)
    code, out, _ = run(capsys, "list", "--owner", "nobody")
    assert code == 0 and out == "no model matches owner=nobody\n"


def test_show(catalog: Catalog, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "show", FLUX_DEV)
    assert code == 0
    assert out.startswith(f"{FLUX_DEV}  FLUX.1 [dev]\n")
    assert "status        active, enabled by the sync's policy" in out
    assert "unit price    $0.025 per megapixel (fal: 'megapixels')" in out
    for section in (
        "\ninputs\n",
        "\noutputs\n",
        "\nprice history\n",
        "\nschema history\n",
        "\nadmin actions\n",
    ):
        assert section in out
    image_size = next(line for line in out.splitlines() if line.startswith("image_size "))
    assert image_size.split()[:5] == ["image_size", "object", "|", "string", "no"]
    assert '"landscape_4_3"' in image_size and "square_hd" in image_size

    details = run_json(capsys, "show", HELD)
    assert details["model"]["review_reason"].startswith("breaking schema change: input legacy_style")
    assert [h["status"] for h in details["schema_history"]] == ["accepted", "held"]
    assert details["price_history"][0]["unit_price"] == "0.08"
    assert next(f for f in details["inputs"] if f["name"] == "prompt")["required"] is True


def test_cheapest(catalog: Catalog, capsys: pytest.CaptureFixture[str]) -> None:
    """Winners worked out from the snapshot's prices. The enabled, active image models with LoRA are 37;
    the cheapest at their defaults are fal-ai/qwen-image and fal-ai/qwen-image/image-to-image, both $0.02
    per megapixel × 1 MP (landscape_4_3, 1024×768 = 786,432 px) = $0.02 (the next, flux-kontext-lora and
    flux-krea-lora, $0.035); the tie goes to the lower id. Cloud: $0.02 ÷ 0.30 = $0.0666… → $0.0667.
    Two square_hd images: fal-ai/sana, $0.001 per megapixel × 1 MP (1024×1024) × 2 = $0.002, the
    snapshot's lowest megapixel price for an image model that takes image_size and num_images;
    cloud $0.002 ÷ 0.30 = $0.00666… → $0.0067."""
    best = run_json(capsys, "cheapest", "--type", "image", "--capability", "lora")
    assert (best["endpoint_id"], best["candidates"]) == ("fal-ai/qwen-image", 37)
    estimate = best["estimate"]
    assert (estimate["unit_price"], estimate["unit"], estimate["quantity"]) == ("0.02", "megapixel", "1")
    assert Decimal(estimate["cost"]) == Decimal("0.02")
    assert Decimal(estimate["cloud_price"]) == Decimal("0.0667")

    request = run_json(capsys, "cheapest", "--type", "image", "--inputs", TWO_SQUARE_HD)
    assert request["endpoint_id"] == "fal-ai/sana"
    assert request["estimate"]["inputs"] == json.loads(TWO_SQUARE_HD)
    assert Decimal(request["estimate"]["quantity"]) == 2
    assert Decimal(request["estimate"]["cost"]) == Decimal("0.002")
    assert Decimal(request["estimate"]["cloud_price"]) == Decimal("0.0067")
    code, out, _ = run(capsys, "cheapest", "--type", "image", "--capability", "seed")
    assert code == 0 and out.startswith("cheapest enabled, active image model with seed (")
    code, _, err = run(capsys, "cheapest", "--type", "3d", "--capability", "lora")
    assert code == 1 and "no enabled, active 3d model with lora can be priced" in err


def test_enable_disable_undo(catalog: Catalog, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "disable", "--owner", "bria", "--type", "image", "--reason", "paused", "--dry-run"
    )
    assert code == 0 and "dry run: would have disabled 17 models, 0 unchanged; nothing written" in out
    assert catalog.audit() == []

    code, out, _ = run(capsys, "disable", FLUX_DEV, "--reason", "too popular", "--by", "erin")
    assert code == 0
    assert f"{FLUX_DEV}  yes               no               changed    too popular" in out
    assert "disabled 1 models, 0 unchanged (by erin: 'too popular', recorded in model_admin_actions)" in out
    row = catalog.row(FLUX_DEV)
    assert row["enabled"] is False and row["operator_reason"] == "too popular"

    result = run_json(
        capsys, "enable", "--search", "ideogram/v2", "--owner", "fal-ai", "--reason", "r", "--by", "erin"
    )
    outcomes = {m["endpoint_id"]: m["outcome"] for m in result["models"]}
    assert outcomes[HELD] == "refused"
    code, out, _ = run(capsys, "show", FLUX_DEV)
    assert "disabled by an operator on" in out and "too popular" in out and "erin" in out

    code, out, _ = run(capsys, "undo", FLUX_DEV, "--by", "erin")
    assert code == 0 and "handed back to policy 1 models" in out
    assert catalog.row(FLUX_DEV)["enabled"] is True and catalog.row(FLUX_DEV)["operator_enabled"] is None
    audit = [(a["endpoint_id"], a["action"], a["actor"]) for a in catalog.audit()]
    assert audit[0] == (FLUX_DEV, "disable", "erin") and audit[-1] == (FLUX_DEV, "undo", "erin")

    with pytest.raises(SystemExit) as exit_:
        main(["enable", FLUX_DEV])  # --reason is required
    assert exit_.value.code == 2 and "--reason" in capsys.readouterr().err


def test_recommendations_dry_run_then_apply(catalog: Catalog, capsys: pytest.CaptureFixture[str]) -> None:
    before = catalog.rows()
    code, out, _ = run(capsys, "recommendations")
    assert code == 0
    assert "dry run: 2 would be applied; run with --apply to apply them" in out
    assert "1 reprice recommendations are listed only: fixed prices belong to people, never applied" in out
    reprice = next(line for line in out.splitlines() if line.startswith(APP_ROW))
    assert "reprice" in reprice and "listed only" in reprice
    assert catalog.rows() == before and catalog.audit() == []

    applied = run_json(capsys, "recommendations", "--apply", "--by", "frank")
    assert applied["applied"] == 2 and applied["dry_run"] is False
    outcomes = {r["endpoint_id"]: r["outcome"] for r in applied["recommendations"]}
    assert outcomes[DEPRECATED] == outcomes[POLICY_OFF] == "applied" and outcomes[APP_ROW] == "listed only"
    assert {(a["endpoint_id"], a["action"], a["actor"]) for a in catalog.audit()} == {
        (DEPRECATED, "apply_recommendation", "frank"),
        (POLICY_OFF, "apply_recommendation", "frank"),
    }


def test_accept(catalog: Catalog, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "accept", "--dry-run")
    assert code == 0
    assert out.splitlines()[1:] == [
        "  input legacy_style: removed (was string) (breaking)",
        "dry run: nothing accepted",
    ]
    assert catalog.audit() == []
    code, out, _ = run(capsys, "accept", HELD, "--by", "gina", "--reason", "callers updated")
    assert code == 0 and out.endswith(f"accepted 1: {HELD}\n")
    [audit] = catalog.audit()
    assert (audit["action"], audit["actor"]) == ("accept", "gina") and audit["reason"].startswith(
        "callers updated"
    )
    code, out, _ = run(capsys, "accept")
    assert code == 0 and out == "nothing is held for review\n"


def test_the_installed_entry_point(catalog: Catalog) -> None:
    command = Path(sys.executable).with_name("genfeed-catalog")
    completed = subprocess.run(
        [str(command), "estimate", FLUX_DEV, "--inputs", TWO_SQUARE_HD, "--json"],
        capture_output=True,
        text=True,
        env=os.environ | {"GENFEED_DATABASE_URL": catalog.database_url},
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert Decimal(json.loads(completed.stdout)["cloud_price"]) == Decimal("0.1667")
    failed = subprocess.run(
        [str(command), "show", "fal-ai/flux/dex"],
        capture_output=True,
        text=True,
        env=os.environ | {"GENFEED_DATABASE_URL": catalog.database_url},
        timeout=60,
        check=False,
    )
    assert failed.returncode == 1 and "did you mean fal-ai/flux/dev" in failed.stderr

"""The profitability report on the real snapshot, plus fixed-price rows written by hand."""

from __future__ import annotations

import re
from decimal import Decimal

from genfeed_pipeline.pricing import policy_enabled
from genfeed_pipeline.report import markdown
from genfeed_pipeline.report.profitability import build_report, recommendations, summarize_by_category

SCHNELL = "fal-ai/flux/schnell"
KLING = "fal-ai/kling-video/v2.5-turbo/pro/image-to-video"
LTXV = "fal-ai/ltxv-13b-098-distilled"
GUARD = "fal-ai/qwen-3-guard"


def test_report_covers_dynamic_and_fixed_price_models(priced_snapshot) -> None:
    priced, policy = priced_snapshot
    invalid = next(eid for eid, m in priced.items() if not m.valid)
    rows = {
        SCHNELL: {
            "id": SCHNELL,
            "name": "FLUX schnell",
            "category": "image",
            "enabled": True,
            "pricing": {"fixedPrice": 0.002},
            "status": "active",
            "managed_by": None,
        },
        invalid: {
            "id": invalid,
            "name": "broken",
            "category": "image",
            "enabled": True,
            "status": "active",
            "managed_by": "fal_catalog",
            "pricing": {},
        },
        "openai/gpt-image-1": {
            "id": "openai/gpt-image-1",
            "name": "GPT",
            "category": "image",
            "enabled": True,
            "pricing": {"fixedPrice": 0.05},
            "status": "active",
        },
    }
    report = build_report(
        priced,
        rows,
        policy=policy,
        policy_enabled={eid: policy_enabled(m, policy) for eid, m in priced.items()},
    )
    assert len(report) == 1182 + 1  # the snapshot's endpoints plus the non-fal fixed-price row
    by_id = report.set_index("endpoint_id")
    schnell = by_id.loc[SCHNELL]
    assert schnell["pricing_kind"] == "fixed" and schnell["genfeed_price"] == Decimal("0.002")
    assert schnell["fal_cost"] == Decimal("0.003") and schnell["recommendation"] == "reprice"
    assert schnell["reason"] == "fixed price $0.002 is below fal cost $0.003"
    assert schnell["margin_usd"] == Decimal("-0.001") and round(schnell["margin_pct"], 1) == -50.0
    assert by_id.loc[invalid]["recommendation"] == "disable"
    assert by_id.loc["openai/gpt-image-1"]["genfeed_price"] == Decimal("0.05")

    dynamic = report[(report["pricing_kind"] == "dynamic") & report["priced"]]
    # 676 models of the snapshot can be priced (README); the app's row prices flux/schnell itself.
    assert len(dynamic) == 675 and SCHNELL not in set(dynamic["endpoint_id"])
    worked = {
        # $0.025 per megapixel × 1 MP (landscape_4_3, 1024×768) = $0.025; ÷ 0.30 = $0.08333… → $0.0834;
        # margin (0.0834 − 0.025) ÷ 0.0834 = 70.02%
        "fal-ai/flux/dev": ("0.025", "0.0834", "0.0584", 70.02),
        # $0.07 per second × 5 s (the default duration) = $0.35; ÷ 0.30 = $1.16666… → $1.1667; 70.00%
        KLING: ("0.35", "1.1667", "0.8167", 70.00),
        # 121 frames ÷ 24 fps × $0.02 = $0.1008333…, stored rounded up to $0.1008333334;
        # the price from the unrounded cost: $0.3361111… → $0.3362; (0.3362 − 0.1008333334) ÷ 0.3362 = 70.01%
        LTXV: ("0.1008333334", "0.3362", "0.2353666666", 70.01),
        # the 18-character example prompt → ⌈18 ÷ 4⌉ = 5 tokens × $0.002 per 1000 = $0.00001; ÷ 0.30 is
        # below the $0.001 floor → $0.001; (0.001 − 0.00001) ÷ 0.001 = 99.00%
        GUARD: ("0.00001", "0.001", "0.00099", 99.00),
    }
    for endpoint_id, (cost, price, margin, margin_pct) in worked.items():
        line = by_id.loc[endpoint_id]
        assert line["pricing_kind"] == "dynamic", endpoint_id
        assert (line["fal_cost"], line["genfeed_price"]) == (Decimal(cost), Decimal(price)), endpoint_id
        assert line["margin_usd"] == Decimal(margin), endpoint_id
        assert round(line["margin_pct"], 2) == margin_pct, endpoint_id

    todo = recommendations(report)
    assert set(todo["recommendation"]) <= {"enable", "disable", "reprice"}
    assert set(todo[todo["recommendation"] == "reprice"]["endpoint_id"]) == {SCHNELL}
    by_type = summarize_by_category(report)
    assert set(by_type["category"]) >= {"image", "video", "audio"}
    assert by_type["models"].sum() == len(report)


def test_markdown_escapes_text_from_fal() -> None:
    hostile = "<img src=x onerror=alert(1)> [click](http://evil) | **bold**"
    rendered = markdown.table([[hostile, 1]], ["name", "n"])
    assert "<img" not in rendered and "](http" not in rendered
    assert len(re.findall(r"(?<!\\)\|", rendered)) == 3 * 3  # the cell's pipe is escaped: no extra column
    assert "\\|" in rendered


def test_median_cost_per_call_by_type_on_the_snapshot(priced_snapshot) -> None:
    priced, policy = priced_snapshot
    report = build_report(priced, {}, policy=policy, policy_enabled={})
    by_type = summarize_by_category(report).set_index("category")
    assert by_type.loc["image", "median_fal_cost"] > 0
    assert by_type.loc["video", "median_fal_cost"] > by_type.loc["image", "median_fal_cost"]

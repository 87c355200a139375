"""The profitability report on the real snapshot, plus fixed-price rows written by hand."""

from __future__ import annotations

import re
from decimal import Decimal

from genfeed_pipeline.pricing import policy_enabled
from genfeed_pipeline.report import markdown
from genfeed_pipeline.report.profitability import build_report, recommendations, summarize_by_category


def test_report_covers_dynamic_and_fixed_price_models(priced_snapshot) -> None:
    priced, policy = priced_snapshot
    invalid = next(eid for eid, m in priced.items() if not m.valid)
    rows = {
        "fal-ai/flux/dev": {
            "id": "fal-ai/flux/dev",
            "name": "FLUX",
            "category": "image",
            "enabled": True,
            "pricing": {"fixedPrice": 0.02},
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
    assert len(report) == len(priced) + 1  # plus the non-fal fixed-price row
    flux = report.set_index("endpoint_id").loc["fal-ai/flux/dev"]
    assert flux["pricing_kind"] == "fixed" and flux["genfeed_price"] == Decimal("0.02")
    assert flux["fal_cost"] == Decimal("0.025") and flux["recommendation"] == "reprice"
    assert "below fal cost" in flux["reason"]
    assert report.set_index("endpoint_id").loc[invalid]["recommendation"] == "disable"

    dynamic = report[(report["pricing_kind"] == "dynamic") & report["priced"]]
    assert (dynamic["genfeed_price"] >= dynamic["fal_cost"]).all()
    assert dynamic["margin_pct"].min() >= 69.9  # cloud: never under the 70% margin (floor only adds)

    todo = recommendations(report)
    assert set(todo["recommendation"]) <= {"enable", "disable", "reprice"}
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

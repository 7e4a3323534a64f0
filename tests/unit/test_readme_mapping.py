"""docs/partners.md "Writing a mapping": its example code, run as written, keeps what
the built-in ``shopify`` mapping does and adds ``orders/delete``."""

from __future__ import annotations

import json
import re
import types
from pathlib import Path
from typing import Any

from domain.commands import CancelOrder, CreateOrder, Ignored, MarkShipped
from tests.shopify_examples import TRIGGERED_AT, example

README = Path(__file__).resolve().parents[2] / "docs" / "partners.md"


def readme_mapping() -> Any:
    """The example of docs/partners.md, executed as the module a user would write."""
    text = README.read_text()
    found = re.search(r"<!-- readme-mapping -->\n```python\n(.*?)```", text, re.S)
    assert found is not None, "the mapping example of docs/partners.md is marked"
    module = types.ModuleType("readme_shopify_mapping")
    exec(compile(found.group(1), "docs/partners.md", "exec"), module.__dict__)
    return module.map_shopify


def test_the_readme_mapping_cancels_a_deleted_order_at_its_trigger_time() -> None:
    (command,) = readme_mapping()(
        b'{"id": 450789469}',
        {"x-shopify-topic": "orders/delete", "x-shopify-triggered-at": TRIGGERED_AT},
    )
    assert isinstance(command, CancelOrder)
    assert (command.order_id, command.reason) == ("450789469", "deleted in Shopify")
    assert command.occurred_at.isoformat() == "2026-01-10T12:00:00+00:00"


def test_the_readme_mapping_keeps_every_built_in_topic_so_nothing_parks_for_ever() -> (
    None
):
    mapping = readme_mapping()
    created = mapping(
        json.dumps(example("order")).encode(), {"x-shopify-topic": "orders/create"}
    )
    assert [type(c) for c in created] == [CreateOrder]
    shipped = mapping(
        json.dumps(example("fulfillment")).encode(),
        {"x-shopify-topic": "fulfillments/create"},
    )
    assert [type(c) for c in shipped] == [MarkShipped]
    other = mapping(b"{}", {"x-shopify-topic": "products/update"})
    assert other == Ignored("no mapping for Shopify topic 'products/update'")

"""Namespaces: which partner's objects are which.

A partner's object is identified by (namespace, type, id). A source writes
into one namespace: its own name unless its configuration names a shared one
(a Shopify store and the Stripe account that takes its payments), so two
sources in different namespaces never touch each other's objects, whatever
ids they use.
"""

from __future__ import annotations

import re
import uuid

NAMESPACE = uuid.UUID("6f0c1e0a-6f4b-4c1e-9a38-1d2d0b1d5e57")
"""The UUID namespace of the aggregate ids (``object_uuid``)."""

DEFAULT_NAMESPACE = "default"
"""The namespace of the objects written before there were namespaces: every
source shared it. A source that wrote then keeps it after the upgrade (the
store pins it), so its objects stay where they are."""

NAMESPACE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
"""What a namespace is called: as a source is (no ``:`` nor ``/``)."""


def object_uuid(kind: str, namespace: str, object_id: str) -> uuid.UUID:
    """The aggregate id of the partner's object ``object_id`` of type
    ``kind`` in ``namespace``: ``uuid5(NAMESPACE, "<ns>:<kind>/<id>")``, and
    ``"<kind>/<id>"`` in ``DEFAULT_NAMESPACE``, as it was before namespaces
    (namespace names have neither ``:`` nor ``/``, so no two objects share an
    id)."""
    name = f"{kind}/{object_id}"
    if namespace != DEFAULT_NAMESPACE:
        name = f"{namespace}:{name}"
    return uuid.uuid5(NAMESPACE, name)

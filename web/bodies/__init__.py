"""The bodies the HTTP API answers, as msgspec Structs: ``web.openapi``
documents them with ``msgspec.json.schema_components`` (so each Struct's
docstring is its description), and the views that build them encode them.

Every body is closed (``additionalProperties: false``): a field added to an
answer without being declared here fails ``tests/integration/test_openapi.py``.
A field absent from some answers defaults to ``UNSET`` (omitted when encoded,
not required in the schema); a field always sent, maybe null, has no default.
"""

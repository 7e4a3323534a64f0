"""The reference domain: orders and customers kept in sync with a partner.

Pure: imports eventsourcing and the standard library, nothing from web or
storage.
"""

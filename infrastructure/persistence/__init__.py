"""Storage: eventsourcing recorders that also keep the delivery log.

The delivery log (table ``deliveries``) is written by the same recorder, in
the same transaction, as the events a delivery caused: ``SyncService.save``
passes the records as keyword arguments down to ``insert_events``.
"""

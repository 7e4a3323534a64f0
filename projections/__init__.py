"""Read models built from the event log, one module per read model.

Each projection owns some tables, names the event topics it reads, and
applies one event at a time inside a transaction that also records its
position (``projections.positions``). ``projections.runner`` keeps them up
to date; ``projections.rebuild`` replays the log into shadow tables and swaps.
"""

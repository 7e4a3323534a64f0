"""Named domain errors raised by the aggregates' ``check_*`` guards.

Each maps to one outcome of a delivery: the application turns
``NotYetCreated`` into ``parked``, ``NothingNewer`` into ``stale`` and
``IllegalTransition`` into ``rejected``.
"""


class DomainError(Exception):
    """A command the aggregate declines; ``reason`` is shown to the partner."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotYetCreated(DomainError):
    """The object does not exist yet: the command waits for its creation."""


class NothingNewer(DomainError):
    """The command is not newer than what the object knows: no effect."""


class IllegalTransition(DomainError):
    """The command is newer but its status is unreachable from the current one."""


class AlreadyParked(DomainError):
    """The same delivery already waits for this object's creation."""


class AlreadyErased(DomainError):
    """The customer's personal data was erased before."""


class NotParked(DomainError):
    """An operator asked to release or discard a delivery that is not waiting
    (never parked, or already released, discarded or replayed)."""

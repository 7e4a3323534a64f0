"""idemsync's Alembic migrations, shipped in the wheel as
``infrastructure.migrations`` (``Database.alembic_config`` finds them there)."""

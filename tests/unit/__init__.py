"""Unit tests: no database, no network."""

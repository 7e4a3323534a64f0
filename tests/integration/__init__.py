"""Integration tests: real SQLite and PostgreSQL databases."""

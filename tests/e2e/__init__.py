"""End-to-end tests: the server as a subprocess."""

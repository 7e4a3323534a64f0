"""Tests for idemsync."""

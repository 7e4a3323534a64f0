"""Adapters: settings, persistence, signature schemes, payload mappings."""

"""Shared machinery of child-protection records (cases, tracing requests, traces)."""

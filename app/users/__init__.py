"""Agencies, user groups, users and roles."""

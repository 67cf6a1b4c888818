"""Alembic migrations for the relational store (registry first, then incidents and the rest)."""

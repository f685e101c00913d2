"""Deciding: the ladder, the framework's gates, costs and the next step (pure where it can be)."""

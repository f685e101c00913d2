"""Answering: predictions through the response cache, repair, and the served endpoint."""

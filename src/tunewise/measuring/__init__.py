"""Measuring candidates: one candidate's answers, scores and the spreads around them."""

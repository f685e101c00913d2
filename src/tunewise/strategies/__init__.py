"""The ways of answering a task, one folder each, registered in core/catalog.py; prepare.py turns a
candidate's spec into a ready Predictor for run, serve and measure alike."""

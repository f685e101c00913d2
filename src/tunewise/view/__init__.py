"""`tunewise view`: a local web viewer over the run ledger (runs, one run, two runs diffed)."""

"""What a run leaves behind: results.json, the ledger, comparisons and exports."""

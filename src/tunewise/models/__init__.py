"""Model backends behind one small Protocol."""

"""The command line: `tunewise` and its commands."""

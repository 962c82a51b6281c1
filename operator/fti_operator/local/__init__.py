"""The embedded runner: the operator's rendered children executed as local processes."""

"""One module per CLI command (add_arguments + run)."""

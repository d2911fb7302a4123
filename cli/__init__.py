"""The `tierflow` command line (a face: it may start flows; nothing below imports it)."""

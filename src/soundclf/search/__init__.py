"""Search (agile modelling): find windows of the archive like a few example calls."""

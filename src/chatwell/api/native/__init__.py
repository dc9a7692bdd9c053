"""chatwell's own clean API (``/v1/...``), documented in ``../shared/CONTRACT.md``."""

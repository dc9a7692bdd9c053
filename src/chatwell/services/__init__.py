"""Services: the use cases every door (HTTP dialects, CLI, dashboard) calls. They own transactions."""

"""Background-worker infrastructure shared by ingestion and webhook deliveries: the polling loop.

It knows nothing of what a job is, so it sits below every package that runs one."""

"""HTTP doors: the native API and one package per API dialect. They parse requests, call services
and encode results; none of them re-implements retrieval, prompting, persistence or limits."""

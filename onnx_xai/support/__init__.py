"""Support every layer uses and none depends on for its meaning: the exception hierarchy, safe file
writing, the progress logger and SIGINT/SIGTERM handling (standard library only)."""

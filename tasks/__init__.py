"""One module per job kind: thin Celery tasks that turn a job into a call of ml/ or hardware/."""

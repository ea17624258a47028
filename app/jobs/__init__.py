"""Background jobs: one `enqueue` entry point, rq on Redis or in-process."""

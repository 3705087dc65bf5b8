"""Scheduled jobs (APScheduler): one module per job, the schedule in ``jobs.schedule``."""

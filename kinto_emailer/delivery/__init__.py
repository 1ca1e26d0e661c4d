"""The worker that takes emails from the outbox to the SMTP server, and what it logs."""

"""The SMTP conversation: connection, pipelining, deadline, MIME and headers."""

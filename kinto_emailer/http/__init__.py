"""Slack messages and webhook deliveries leave here: HTTP POSTs, and their signatures."""

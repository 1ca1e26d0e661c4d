"""Command line tools: the delivery worker and kinto-send-email."""

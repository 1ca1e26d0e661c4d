"""HTTP endpoints: status views, unsubscribe, heartbeat and metrics."""

"""fleetgate load tests (Locust scenarios) and the side-by-side benchmark."""

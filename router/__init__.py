"""fleetgate router: stateless FastAPI app that terminates the API dialects and dispatches over gRPC."""

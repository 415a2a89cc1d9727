"""Generated gRPC stubs for proto/fleetgate/v1 (do not edit; `make proto`)."""

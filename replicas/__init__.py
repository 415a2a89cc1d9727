"""fleetgate replicas: engines behind one interface, served over gRPC, placed by Ray, registered in Redis."""

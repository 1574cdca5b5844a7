"""Target health checks as AWS load balancers run them (TCP connect, HTTP GET + matcher)."""

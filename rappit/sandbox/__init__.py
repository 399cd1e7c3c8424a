"""Simulated vendor servers (Shopify today) served over real HTTP, for tests, benchmarks and
demos. Nothing in ``rappit`` outside the CLI imports this package (DESIGN §2)."""

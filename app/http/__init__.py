"""The HTTP layer: blueprints, request helpers, errors, CORS, logging, idempotency, OpenAPI; calls service, store."""

"""The promise and ATP read API: a FastAPI service over the Redis serving store."""

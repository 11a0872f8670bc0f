"""HTTP transport: FastAPI app and thin routers."""

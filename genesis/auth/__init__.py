"""Authentication: JWTs issued and verified (`tokens`), identity providers' keys (`jwks`). Any room may import it."""

"""Genesis command service: shared core (settings, database, migrations, CLI)."""

"""The `genesis` command and the composition root: the one place in `genesis` allowed to import the rooms it
starts (`api`, `relay`, `agents`), lazily, in `runner`. Nothing imports it but the entry point."""

"""The shared core every room stands on: settings, database, migrations, errors, the command catalogue, the
listener, logs; sub-rooms `auth`, `telemetry`, `local`; and `cli`, the composition root. Nothing here imports
`api`, `relay` or `agents`, except `genesis.cli`, which starts them."""

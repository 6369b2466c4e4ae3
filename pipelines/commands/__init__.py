"""One module per ``atp`` subcommand: ``register(subparsers)`` adds it, ``args.run`` runs it."""

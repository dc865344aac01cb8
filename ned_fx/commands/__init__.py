"""The CLI's sub-commands that compose stages, one module each with ``register(subparsers)`` and ``run(args)``."""

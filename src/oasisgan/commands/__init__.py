"""One module per `oasis` command: `register(subparsers)` and `run(args)`."""

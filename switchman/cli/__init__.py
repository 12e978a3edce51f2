"""The ``switchman`` command: one module per subcommand."""

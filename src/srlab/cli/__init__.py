"""The ``srlab`` command: one module per subcommand, each parsing its flags and calling the library."""

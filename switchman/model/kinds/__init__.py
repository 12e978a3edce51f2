"""One module per kind of document: its typed spec and how it is read."""

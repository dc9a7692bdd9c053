"""Plain domain types shared by every layer. Imports nothing from the rest of the project; no I/O."""

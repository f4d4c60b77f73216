"""Typer sub-commands. Each one parses flags and calls library functions; no logic lives here."""

"""Renderers: a Report in, text out. Nothing before this package prints anything."""

"""Jinja templates of Asterisk config files (a package so that wheels ship them)."""

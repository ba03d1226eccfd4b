"""sitemail: a multi-site Exchange 2010-style mail organization."""

__version__ = "0.1.0"

"""The shipped treatment-failure pathway: loading its files, sample patients, demo summaries and stop rules.

Pure helpers (no database, no clock reads): the CLI and the services call them.
"""

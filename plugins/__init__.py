"""The demo app's own modules, loaded the way a user's project loads its own.

routes.toml names them (`plugins.chat:on_message`); the folder that holds routes.toml is
importable, so this package resolves without being installed. `pip install vws` never installs it.
"""

"""The demo app's handler modules and the plugins that ship with vws."""

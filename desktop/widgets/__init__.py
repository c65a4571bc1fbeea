"""Reusable widgets: config forms, live training curves, the run monitor."""

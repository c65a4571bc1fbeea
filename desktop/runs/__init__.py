"""The Runs page: the runs of the workspace, their details and curves."""

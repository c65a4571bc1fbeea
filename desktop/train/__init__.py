"""The Train page: the run settings, starting and resuming runs, the live monitor."""

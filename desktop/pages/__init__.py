"""The pages of the workflow: Data, Model, Layers, Train, Runs."""

"""The Model page: the backbone catalog, weights, and trusting remote code."""

"""Read models arrive with the projections issue."""

"""Generic widgets and helpers used by more than one page: plots, palette colours, config
forms, file headers, image loading, thumbnails, run curves."""

"""Migration revisions; a package so that installed copies ship them."""

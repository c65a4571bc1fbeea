"""The Data page: choosing a folder or table, the scan, its problems, the split, previews."""

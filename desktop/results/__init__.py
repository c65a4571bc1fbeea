"""The Results page: evaluation, comparison, mistakes, Try it, reports and export."""

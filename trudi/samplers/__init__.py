"""trudi.samplers."""

"""trudi.policies."""

"""trudi.learners."""

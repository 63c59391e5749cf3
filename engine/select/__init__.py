"""Class selection: per-class statistics, automatic decisions, the particle filter."""

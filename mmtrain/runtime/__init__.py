"""Where and how a run executes: logging set-up, progress, tracking."""

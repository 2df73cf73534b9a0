"""What a person reads: plots, the console summary, run info, report.md, the leaderboard."""

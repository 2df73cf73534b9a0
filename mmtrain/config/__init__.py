"""Checking the composed config before anything heavy runs."""

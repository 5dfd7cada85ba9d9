"""Metrics of traced generations, their intervals and the propensity score PM."""

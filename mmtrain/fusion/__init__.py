"""Fusion strategies. Feature-level ones (early, intermediate) return one fused vector per sample;
decision-level ones (late, hybrid) return one vector per member, a head per member predicts, and
``combine`` merges the members' predictions."""

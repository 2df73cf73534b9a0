"""Fusion strategies, each a subclass of fusion.base.Fusion (the contract) and one YAML in
mmtrain/conf/fusion/.
Feature-level ones (early, intermediate) return one fused vector per sample; decision-level ones
(late, hybrid: DecisionFusion) return one vector per member, a head per member predicts, and
``combine`` merges the members' predictions."""

"""KMC Sense analysis: researchers' tools over recorded samples (load, analyze, simulate)."""

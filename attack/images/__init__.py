"""Image comparisons the stages share: DESIGN's distances (metrics), the compare-size cache
(compare), structural agreement (structure), false-positive flags (flags), retrieval embedders
(embed) and faiss indexes of training images (index)."""

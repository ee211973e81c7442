"""The store-writing stages, each resumable on its own: score, rank, generate, carlini, retrieve
(with template masks), and label (rules: thresholds and the decision; witness: the evidence a copy
label rests on; align: copies under a crop, rescale or mirror). runs.py holds what they share.
attack.pipeline runs them in order."""

"""Self-training on unlabeled recordings: pseudo-label rounds (rounds.py names the students),
the teacher's scores turned into pseudo-labels (pseudo_labels.py) and the student's batches of
labelled crops and pseudo-labelled windows (batches.py)."""

"""Review: draw review sets of windows, keep a person's marks, and calibrate scores from them."""

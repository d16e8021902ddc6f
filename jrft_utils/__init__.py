"""jrft_utils: the logic behind the jrft notebooks.

A reproduction of "Why Reinforcement Fine-Tuning Enables MLLMs Preserve Prior Knowledge Better:
A Data Perspective" (arXiv 2506.23508). One module per concept; the notebooks import, never copy.
"""

__version__ = "0.1.0"

"""What a person sees in the terminal: the live progress view and the result tables."""

from autodl.ui._progress import ProgressDisplay
from autodl.ui._tables import print_model, print_summary, top_trials_table

__all__ = ["ProgressDisplay", "print_model", "print_summary", "top_trials_table"]

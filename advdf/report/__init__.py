"""Reports: one table renderer (Markdown / CSV / LaTeX), plots, and W&B logging of long-format tables."""

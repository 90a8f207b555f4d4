"""Speed comparisons of advdf's attacks against reference libraries (outside the installed package)."""

"""Runnable jobs built from configs: train, attack (cached), evaluate, and paper-table reproduction."""

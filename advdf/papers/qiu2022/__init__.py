"""Seed 003: Qiu, Du, Lu 2022, CDMAA — protective perturbations against image-translation generators."""

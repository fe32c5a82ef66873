"""The brief's import paths, for code written against the brief: each module re-exports the product's class
(README, "The brief's API"). Importing sets Django up with the product's settings when a script has not."""

from apps.core.standalone import ensure_django

ensure_django()

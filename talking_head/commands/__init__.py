"""Command-line front ends of the pipeline (``animate``, ``personalize``, ``compare``)."""

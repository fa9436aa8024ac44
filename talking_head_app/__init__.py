"""The Gradio app's handlers, kept out of the library: ``talking_head`` never imports gradio or spaces.

``app.py`` (the Space's entry point, at the repository's top level) lays out the UI; what each button
does lives in :mod:`talking_head_app.handlers`. Its dependencies are the ``[app]`` extra.
"""

"""The Textual terminal UI.

Will hold the app, its screens and widgets (one per file) and a single .tcss stylesheet: steer
the loop, watch every stage live, and inspect agent traces, probes and judge verdicts.
"""

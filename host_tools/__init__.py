"""citynode host tools: replay, synthesize recordings, score and report.

Every command of the `citynode` CLI is a function here first; the CLI is a
thin layer over them.
"""

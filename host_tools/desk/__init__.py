"""Host tools for the desk: replay, synthetic and imported recordings,
scores, reports, the virtual board and the demo."""

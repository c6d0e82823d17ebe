# CircuitPython has no `socket` module: sockets come from `socketpool`.
raise ImportError("no module named 'socket'")

# CircuitPython runs this after boot.py: the node itself (MicroPython's
# main.py). The secrets come from /settings.toml; whatever goes wrong ends in
# safe mode (one line on the console, then an idle loop a Ctrl-C ends),
# never in a traceback followed by a reload loop.
try:
    from citynode.board import node
    from citynode.board.hal_circuitpython import settings_into
except Exception as e:  # noqa: BLE001 - a broken firmware copy must not crash-loop
    print("citynode safe mode: cannot import citynode.board.node: %r" % (e,))
else:
    node.main(prepare=settings_into)

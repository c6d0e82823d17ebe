# Runs after boot.py: the node itself. Whatever goes wrong ends in safe mode
# (one line on the console, then an idle loop a Ctrl-C interrupts), never in
# a traceback followed by a reset loop.
try:
    from citynode.board import node
except Exception as e:  # noqa: BLE001 - a broken firmware copy must not crash-loop
    print("citynode safe mode: cannot import citynode.board.node: %r" % (e,))
else:
    node.main()

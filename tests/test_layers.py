"""The import graph of both trees, read from the source: the firmware never
imports the desk's code, and no module reaches itself through its imports
(imports inside functions count too: they run on a board all the same)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREES = (ROOT / "firmware" / "citynode", ROOT / "host_tools")


def _modules():
    found = {}
    for tree in TREES:
        for f in sorted(tree.rglob("*.py")):
            parts = list(f.relative_to(tree.parent).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = f
    return found


def _graph():
    mods = _modules()
    edges = {}
    for name, f in mods.items():
        out = set()
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"), str(f))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [node.module] + ["%s.%s" % (node.module, a.name) for a in node.names]
            else:
                continue
            out.update(t for t in targets if t in mods and t != name)
        edges[name] = out
    return edges


def _cycle(edges):
    """One import cycle as a list of modules, or None."""
    state = {}
    path = []

    def visit(m):
        state[m] = 1
        path.append(m)
        for n in sorted(edges[m]):
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        path.pop()
        state[m] = 2
        return None

    for m in sorted(edges):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_the_firmware_never_imports_the_desk():
    edges = _graph()
    wrong = sorted("%s -> %s" % (m, n) for m in edges if m.startswith("citynode")
                   for n in edges[m] if n.startswith("host_tools"))
    assert wrong == []


def test_no_module_imports_itself_through_others():
    assert _cycle(_graph()) is None


def test_the_walk_sees_a_cycle_and_a_wrong_direction():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    edges = _graph()
    assert "citynode.sense.core" in edges["citynode.board.node"]
    assert "citynode.config" in edges["citynode.board.node"]
    assert "citynode.board.replay" in edges["host_tools.desk.replay"]


def _imports(f):
    """Every module name `f` imports (inside functions too)."""
    found = set()
    for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"), str(f))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def test_only_the_cli_package_parses_command_lines():
    """The host tools are an API: only host_tools.cli imports argparse, and
    nothing outside it imports the CLI."""
    mods = _modules()
    api = [m for m in mods if m.startswith("host_tools") and not m.startswith("host_tools.cli")]
    assert "host_tools.field.flash" in api and "host_tools.field.provision" in api
    wrong = sorted("%s imports %s" % (m, n) for m in api for n in _imports(mods[m])
                   if n == "argparse" or n.startswith("host_tools.cli"))
    assert wrong == []
    assert "argparse" in _imports(mods["host_tools.cli"])


def _names(f):
    """Every name and attribute `f` uses."""
    tree = ast.parse(f.read_text(encoding="utf-8"), str(f))
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | \
        {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}


def test_only_the_transport_talks_to_a_board():
    """Provisioning, recording and the demo reach a board through
    host_tools.field.transport: nothing else runs mpremote, imports its
    transport or opens a serial port (listing the ports is not talking)."""
    mods = _modules()
    users = {"host_tools.field.provision", "host_tools.field.record", "host_tools.desk.demo"}
    assert all("host_tools.field.transport" in _imports(mods[m]) for m in users)
    wrong = []
    for m, f in mods.items():
        if m in ("host_tools.field.transport", "host_tools.mpy") or not m.startswith("host_tools"):
            continue
        wrong += ["%s imports %s" % (m, n) for n in _imports(f)
                  if n == "serial" or n.startswith(("mpremote", "serial.serial"))]
        wrong += ["%s runs mpremote" % m for n in _names(f) if n == "mpremote_binary"]
    assert wrong == []
    assert "mpremote.transport_serial" in _imports(mods["host_tools.field.transport"])

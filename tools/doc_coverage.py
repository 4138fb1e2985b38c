#!/usr/bin/env python3
"""Documentation coverage of the handwritten modules, from their symbol graphs.

    tools/doc_coverage.py [--require MODULE=PERCENT ...] [--exclude-path PART ...] [--json FILE] DIR_OR_FILE...

Reads `<Module>.symbols.json` (and `<Module>@<Other>.symbols.json`, extensions of other modules' types)
as `swift-symbolgraph-extract` writes them for `swift package generate-documentation` or
`swift package dump-symbol-graph`, and counts every public or open symbol of each module:

- documented: it has a doc comment of its own, or it implements a requirement of a protocol and
  inherits that requirement's documentation (a `memberOf` relationship with a `sourceOrigin`, or a
  doc comment that the extractor copied from another module);
- not counted: symbols the compiler synthesized (`::SYNTHESIZED::` in their identifier), extension
  blocks, and symbols whose source file path contains an `--exclude-path` part (generated code);
- undocumented: everything else, listed as `file:line: Module.Path.to.symbol (kind)`.

Exits 1 when a module given with `--require` is below its percentage (or has no symbols at all:
a graph that was not found must not pass), 2 on bad input. Prints one line per module.
"""

import argparse
import glob
import json
import os
import sys
from urllib.parse import unquote, urlparse

SKIPPED_KINDS = {"swift.extension"}


def graph_files(paths):
    """Every *.symbols.json under the given folders, or the given files themselves, sorted."""
    files = []
    for path in paths:
        if os.path.isdir(path):
            files.extend(glob.glob(os.path.join(path, "**", "*.symbols.json"), recursive=True))
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder (build the symbol graphs first: make docs)")
    return sorted(set(files))


def source_path(symbol):
    uri = (symbol.get("location") or {}).get("uri", "")
    return unquote(urlparse(uri).path) if uri else ""


def has_comment(symbol):
    """A doc comment with some text: the symbol's own, or one the extractor copied from the protocol
    requirement it implements (then its `module` is the protocol's)."""
    comment = symbol.get("docComment") or {}
    return any(line.get("text", "").strip() for line in comment.get("lines", []))


def analyse(files, exclude_paths=()):
    """{module: {"documented": n, "total": n, "missing": [(path, line, name, kind)]}} over the graphs."""
    modules = {}
    seen = set()
    for path in files:
        with open(path, encoding="utf-8") as f:
            graph = json.load(f)
        module = graph["module"]["name"]
        entry = modules.setdefault(module, {"documented": 0, "total": 0, "missing": []})
        inherited = {r["source"] for r in graph.get("relationships", []) if r.get("sourceOrigin")}
        for symbol in graph.get("symbols", []):
            precise = symbol["identifier"]["precise"]
            kind = symbol["kind"]["identifier"]
            if symbol.get("accessLevel") not in ("public", "open") or kind in SKIPPED_KINDS:
                continue
            if "::SYNTHESIZED::" in precise or (module, precise) in seen:
                continue
            file = source_path(symbol)
            if any(part in file for part in exclude_paths):
                continue
            seen.add((module, precise))
            entry["total"] += 1
            if has_comment(symbol) or precise in inherited:
                entry["documented"] += 1
            else:
                line = ((symbol.get("location") or {}).get("position") or {}).get("line", -1) + 1
                name = ".".join([module, *symbol.get("pathComponents", [symbol["names"]["title"]])])
                entry["missing"].append((file, line, name, kind))
    for entry in modules.values():
        entry["missing"].sort()
    return modules


def percent(entry):
    return 100.0 if entry["total"] == 0 else 100.0 * entry["documented"] / entry["total"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="symbol-graph folders or files")
    parser.add_argument("--require", action="append", default=[], metavar="MODULE=PERCENT",
                        help="fail when MODULE's coverage is below PERCENT (or MODULE has no graph)")
    parser.add_argument("--exclude-path", action="append", default=[], metavar="PART",
                        help="leave out symbols declared in files whose path contains PART")
    parser.add_argument("--json", metavar="FILE", help="also write the counts and missing symbols as JSON")
    parser.add_argument("--list", action="store_true", help="list undocumented symbols of every module, not only failing ones")
    args = parser.parse_args(argv)

    requirements = {}
    for item in args.require:
        module, sep, value = item.partition("=")
        try:
            requirements[module] = float(value)
        except ValueError:
            sep = ""
        if not sep or not module:
            print(f"error: --require takes MODULE=PERCENT, not {item!r}", file=sys.stderr)
            return 2
    try:
        modules = analyse(graph_files(args.paths), args.exclude_path)
    except (OSError, ValueError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    failed = []
    for module in sorted(set(modules) | set(requirements)):
        entry = modules.get(module, {"documented": 0, "total": 0, "missing": []})
        required = requirements.get(module)
        below = required is not None and (entry["total"] == 0 or percent(entry) < required)
        status = "" if required is None else (f"  FAIL (required {required:g} %)" if below else f"  ok (required {required:g} %)")
        print(f"{module}: {entry['documented']}/{entry['total']} public symbols documented ({percent(entry):.1f} %){status}")
        if entry["total"] == 0 and required is not None:
            print(f"  no public symbols found for {module}: was its symbol graph built?", file=sys.stderr)
        if below or args.list:
            for file, line, name, kind in entry["missing"]:
                shown = os.path.relpath(file) if file.startswith(os.getcwd() + os.sep) else (file or "?")
                print(f"  {shown}:{line}: {name} ({kind}) has no doc comment",
                      file=sys.stderr if below else sys.stdout)
        if below:
            failed.append(module)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({m: {"documented": e["documented"], "total": e["total"], "percent": round(percent(e), 2),
                           "missing": [{"file": p, "line": l, "symbol": n, "kind": k} for p, l, n, k in e["missing"]]}
                       for m, e in sorted(modules.items())}, f, indent=2)
            f.write("\n")
    if failed:
        print(f"error: documentation coverage below the requirement in {', '.join(failed)}: add /// comments "
              "to the symbols listed above", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Differential fuzzer for our Jinja engine (Sources/LlamaJinja) against jinja2 as transformers
sets it up (tools/jinja_reference.py).

    fuzz_jinja.py [--seconds 60] [--seed N] [--batch 400] [--binary .build/debug/llama-swift]
                  [--out DIR] [--keep-going] [--no-minimise]

Generates random templates from a grammar of what chat templates use (every operator,
literals, filters with arguments, tests, methods on strings/dicts/lists, if/elif/else, for
with loop.*/else/filter/break/continue, set and block set, namespace, macros with defaults
and call blocks, filter blocks, whitespace control with trim/lstrip, raw, comments, slicing,
ternaries) over random contexts, renders every case with jinja2 (in this process) and with
`llama-swift template render --jobs` (one process per batch), and reports each case where
the two disagree: different output, or only one side raising. A mismatch is minimised by
removing statements, replacing expressions with their parts and dropping context, as long as
the same kind of mismatch remains. Mismatches are written to DIR (default
.build/fuzz-jinja/) as JSON jobs; exit status 1 when there was any.

Known, accepted differences (KNOWN_CLASSES: each with its reason) are counted per class and
reported, not treated as mismatches: CPython's memory addresses in reprs (compared with the
address taken out, so the rest must still agree), the reprs of Python functions and classes
behind jinja2's globals, and integers beyond 64 bits (Python's are unbounded). The summary is
also written to DIR/summary.json.
"""

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

warnings.filterwarnings("ignore")  # the SyntaxWarnings of Python code jinja2 compiles
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import jinja_reference  # noqa: E402

NOW = "2025-03-14T09:26:53Z"

# ---------------------------------------------------------------------------------------------
# A template is a tree of nodes: each renders to text, and the minimiser rewrites the tree.


class N:
    """A node: its sort ('expr', 'stmt', 'body' or 'text') and its parts (text or nodes)."""
    __slots__ = ("sort", "parts")

    def __init__(self, sort, *parts):
        self.sort = sort
        self.parts = list(parts)

    def render(self):
        return "".join(p if isinstance(p, str) else p.render() for p in self.parts)

    def copy(self):
        return N(self.sort, *[p if isinstance(p, str) else p.copy() for p in self.parts])


def E(*parts):
    return N("expr", *parts)


def S(*parts):
    return N("stmt", *parts)


def B(items):
    return N("body", *items)


# ---------------------------------------------------------------------------------------------
# Random contexts.

WORDS = ["user", "assistant", "system", "tool", "hello", "Hello World", "  padded  ", "", " ",
         "a,b,,c", "x.y.z", "line1\nline2", "tab\there", "ünïcödé", "日本語", "emoji 😀🎉", "ß",
         "İstanbul", "<b>&amp;</b>", "'quoted'", '"dq"', "back\\slash", "123", "-4.5", "3.0",
         "True", "None", "{{ not a tag }}", "%s and %d", "{0} {1}", "UPPER lower", "mIxEd CaSe",
         "title case words", "ǅ", "ﬁ", "\u00a0nbsp", "a\u2028b", "\r\n", "trailing\n", "\x00nul"]
KEYS = ["role", "content", "name", "id", "type", "arguments", "value", "items", "keys", "a", "b",
        "x", "tool_calls", "function", "1", "", "ü", "get", "values"]


def rand_scalar(r):
    c = r.random()
    if c < 0.35:
        return r.choice(WORDS)
    if c < 0.55:
        return r.choice([0, 1, 2, 3, -1, -7, 10, 42, 255, 1000, 2 ** 31, -2 ** 40])
    if c < 0.7:
        return r.choice([0.0, -0.0, 0.5, 1.0, 1.5, -2.25, 3.14159, 1e-7, 1e16, 1e22, 2.5e-5, 100.0,
                         0.1, 1 / 3, 123456789.125])
    if c < 0.85:
        return r.choice([True, False])
    return None


def rand_value(r, depth=0):
    c = r.random()
    if depth >= 3 or c < 0.5:
        return rand_scalar(r)
    if c < 0.75:
        return [rand_value(r, depth + 1) for _ in range(r.randint(0, 4))]
    return {r.choice(KEYS): rand_value(r, depth + 1) for _ in range(r.randint(0, 4))}


def rand_message(r):
    m = {"role": r.choice(["system", "user", "assistant", "tool"]), "content": r.choice(WORDS)}
    if r.random() < 0.2:
        m["content"] = None
    if r.random() < 0.25:
        m["tool_calls"] = [{"id": "call_%d" % i, "type": "function",
                            "function": {"name": r.choice(["get_weather", "search"]),
                                         "arguments": r.choice([{"city": "Paris", "n": 2}, "{\"q\": \"x\"}", {}])}}
                           for i in range(r.randint(1, 2))]
    if r.random() < 0.15:
        m["reasoning_content"] = r.choice(WORDS)
    return m


def rand_context(r):
    ctx = {
        "s": r.choice(WORDS), "t": r.choice(WORDS), "n": r.choice([0, 1, 2, 3, -2, 5, 17]),
        "m": r.choice([0, 1, 4, -3, 100]), "f": r.choice([0.0, 0.5, 2.5, -1.25, 3.0, 1e-3, 7.75]),
        "b": r.random() < 0.5, "z": None,
        "l": [rand_scalar(r) for _ in range(r.randint(0, 5))],
        "nums": [r.randint(-5, 9) for _ in range(r.randint(0, 6))],
        "strs": [r.choice(WORDS) for _ in range(r.randint(0, 5))],
        "d": {r.choice(KEYS): rand_value(r, 1) for _ in range(r.randint(0, 5))},
        "nested": rand_value(r, 0),
        "messages": [rand_message(r) for _ in range(r.randint(0, 4))],
        "add_generation_prompt": r.random() < 0.5,
        "bos_token": "<s>", "eos_token": "</s>",
    }
    if r.random() < 0.5:
        ctx["tools"] = [{"type": "function", "function": {"name": "get_weather", "description": "Weather ü",
                                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    for k in list(ctx):
        if r.random() < 0.1 and k not in ("s", "messages"):
            del ctx[k]  # sometimes undefined
    return ctx


# ---------------------------------------------------------------------------------------------
# Random templates.

STRING_LITERALS = ["''", "'a'", "'abc'", "\"x y\"", "'\\n'", "'\\t'", "'\\''", "\"it's\"", "'ü'", "'😀'",
                   "'a,b'", "','", "' '", "'%s'", "'{}'", "'{0}-{1}'", "'\\\\'", "'\\x41'", "'\\u00e9'",
                   "'user'", "'assistant'", "'content'", "'role'", "'<think>'", "'</think>'", "'A b C'",
                   "'%d items'", "'%.2f'", "'%r'", "'%5s|'", "'%-5s|'", "'\\r\\n'", "'a\\\nb'"]
INT_LITERALS = ["0", "1", "2", "3", "-1", "5", "10", "0", "1_000", "42", "0x10", "0o7", "0b101"]
FLOAT_LITERALS = ["0.0", "1.5", "2.0", "0.1", "1e3", "1E-2", "3.14", "-0.5", "1_0.5", "100.0", "1e16", "2.5e-5"]

FILTERS = [
    ("length", []), ("count", []), ("upper", []), ("lower", []), ("title", []), ("capitalize", []),
    ("trim", []), ("trim", ["s"]), ("string", []), ("list", []), ("first", []), ("last", []),
    ("reverse", []), ("sort", []), ("sort", ["reverse=true"]), ("sort", ["attribute='role'"]),
    ("unique", []), ("join", []), ("join", ["s"]), ("join", ["', '", "attribute='role'"]),
    ("default", ["e"]), ("d", ["e", "true"]), ("default", []), ("items", []), ("dictsort", []),
    ("dictsort", ["reverse=true"]), ("dictsort", ["by='value'"]), ("tojson", []), ("tojson", ["indent=2"]),
    ("tojson", ["indent=i"]), ("tojson", ["sort_keys=true"]), ("tojson", ["separators=(',', ':')"]),
    ("tojson", ["ensure_ascii=true"]), ("int", []), ("int", ["e"]), ("float", []), ("abs", []),
    ("round", []), ("round", ["i"]), ("round", ["1", "'floor'"]), ("round", ["0", "'ceil'"]),
    ("indent", []), ("indent", ["i"]), ("indent", ["2", "true"]), ("indent", ["first=true", "blank=true"]),
    ("replace", ["s", "s"]), ("replace", ["'a'", "'b'", "1"]), ("batch", ["2"]), ("batch", ["2", "'x'"]),
    ("map", ["attribute='role'"]), ("map", ["'upper'"]), ("map", ["'string'"]), ("map", ["'int'"]),
    ("select", []), ("select", ["'odd'"]), ("select", ["'string'"]), ("reject", ["'none'"]),
    ("selectattr", ["'role'"]), ("selectattr", ["'role'", "'equalto'", "'user'"]), ("rejectattr", ["'content'"]),
    ("selectattr", ["'tool_calls'", "'defined'"]), ("sum", []), ("sum", ["start=1"]), ("safe", []),
    ("escape", []), ("e", []), ("wordcount", []), ("center", ["9"]), ("format", ["e"]),
    ("format", ["e", "e"]), ("truncate", ["5"]), ("attr", ["'role'"]), ("pprint", []), ("striptags", []),
    ("min", []), ("max", []), ("slice", ["2"]), ("groupby", ["'role'"]), ("map", ["'length'"]),
    ("slice", ["i", "e"]), ("groupby", ["'role'", "e"]), ("groupby", ["attribute='content'", "case_sensitive=true"]),
    ("groupby", ["'function.name'", "default='none'"]), ("groupby", ["i"]), ("batch", ["i", "e"]),
    ("unique", ["attribute='role'"]), ("map", ["attribute='role'", "default=e"]), ("select", ["'gt'", "i"]),
    ("items", []), ("reverse", []), ("first", []), ("list", []),
]
TESTS = [("defined", []), ("undefined", []), ("none", []), ("string", []), ("number", []), ("integer", []),
         ("float", []), ("boolean", []), ("mapping", []), ("iterable", []), ("sequence", []), ("true", []),
         ("false", []), ("odd", []), ("even", []), ("callable", []), ("lower", []), ("upper", []),
         ("divisibleby", ["i"]), ("equalto", ["e"]), ("eq", ["e"]), ("ne", ["e"]), ("in", ["e"]),
         ("sameas", ["e"]), ("gt", ["e"]), ("lt", ["e"]), ("ge", ["e"]), ("le", ["e"]), ("escaped", []),
         ("filter", []), ("test", [])]
STRING_METHODS = [("strip", []), ("strip", ["s"]), ("lstrip", []), ("rstrip", []), ("rstrip", ["s"]),
                  ("split", []), ("split", ["s"]), ("split", ["s", "i"]), ("rsplit", ["s", "1"]),
                  ("splitlines", []), ("startswith", ["s"]), ("endswith", ["s"]), ("startswith", ["(s, s)"]),
                  ("replace", ["s", "s"]), ("replace", ["s", "s", "i"]), ("upper", []), ("lower", []),
                  ("title", []), ("capitalize", []), ("swapcase", []), ("format", ["e"]), ("format", ["e", "e"]),
                  ("format", ["x=e"]), ("join", ["e"]), ("find", ["s"]), ("rfind", ["s"]), ("index", ["s"]),
                  ("count", ["s"]), ("isdigit", []), ("isalpha", []), ("isspace", []), ("isupper", []),
                  ("islower", []), ("isalnum", []), ("center", ["i"]), ("ljust", ["i", "'*'"]), ("zfill", ["i"]),
                  ("partition", ["s"]), ("rpartition", ["s"]), ("casefold", []), ("encode", []), ("istitle", [])]
DICT_METHODS = [("items", []), ("keys", []), ("values", []), ("get", ["s"]), ("get", ["s", "e"]), ("copy", []),
                ("update", ["e"]), ("pop", ["s"]), ("setdefault", ["s", "e"]), ("clear", [])]
LIST_METHODS = [("index", ["e"]), ("count", ["e"]), ("copy", []), ("append", ["e"]), ("pop", []),
                ("pop", ["i"]), ("extend", ["e"]), ("insert", ["i", "e"]), ("remove", ["e"]), ("sort", []),
                ("reverse", [])]
LOOP_ATTRS = ["index", "index0", "first", "last", "length", "revindex", "revindex0", "previtem", "nextitem",
              "depth", "depth0", "changed(1)", "cycle('a', 'b')", "cycle()"]
BINOPS = ["+", "-", "*", "/", "//", "%", "**", "~", "and", "or", "==", "!=", "<", "<=", ">", ">=", "in", "not in"]
TEXTS = ["", "a", "Hello", " ", "  ", "\n", "\n\n", "  \n", "\t", " x ", "ü", "😀", "<|im_start|>", "[INST] ",
         "\n  ", "line\n  ", "a}b", "}", "%", "#", "-", "+",
         "\u3000", "\u00a0", "\r", "\r\n", "\x0b", "\x0c", "\n\u2003"]


class Gen:
    def __init__(self, r):
        self.r = r
        self.names = ["s", "t", "n", "m", "f", "b", "z", "l", "nums", "strs", "d", "nested", "messages",
                      "tools", "add_generation_prompt", "bos_token", "undefined_name"]
        self.loops = []  # loop variables in scope (innermost last)
        self.in_loop = False
        self.macros = []  # (name, parameter count)
        self.namespaces = []
        self.in_macro_caller = False
        self.budget = 0

    # --- expressions
    def arg(self, kind, depth):
        r = self.r
        if kind == "s":
            return E(r.choice(STRING_LITERALS)) if r.random() < 0.7 else self.expr(depth + 1)
        if kind == "i":
            return E(r.choice(["0", "1", "2", "3", "-1", "4", "n", "m"])) if r.random() < 0.8 else self.expr(depth + 1)
        if kind == "e":
            return self.expr(depth + 1)
        if kind == "(s, s)":
            return E("(", r.choice(STRING_LITERALS), ", ", r.choice(STRING_LITERALS), ")")
        if "=" in kind:
            k, v = kind.split("=", 1)
            if v in ("e", "i", "s"):
                return E(k, "=", self.arg(v, depth))
            return E(kind)
        return E(kind)

    def args(self, kinds, depth):
        parts = []
        for i, k in enumerate(kinds):
            if i:
                parts.append(", ")
            parts.append(self.arg(k, depth))
        return parts

    def name(self):
        r = self.r
        pool = self.names + [v for v in self.loops] + [m for m, _ in self.macros] + self.namespaces
        if self.in_loop and r.random() < 0.3:
            return E("loop.", r.choice(LOOP_ATTRS))
        if self.in_macro_caller and r.random() < 0.2:
            return E(r.choice(["caller()", "varargs", "kwargs"]))
        if self.loops and r.random() < 0.4:
            return E(r.choice(self.loops))
        return E(r.choice(pool))

    def literal(self):
        r = self.r
        c = r.random()
        if c < 0.35:
            return E(r.choice(STRING_LITERALS))
        if c < 0.6:
            return E(r.choice(INT_LITERALS))
        if c < 0.72:
            return E(r.choice(FLOAT_LITERALS))
        if c < 0.85:
            return E(r.choice(["true", "false", "none", "True", "False", "None"]))
        if c < 0.93:
            n = r.randint(0, 3)
            return E("[", *self.args(["e"] * n, 3), "]")
        if c < 0.97:
            items = []
            for i in range(r.randint(0, 3)):
                if i:
                    items.append(", ")
                items += [E(r.choice(["'a'", "'b'", "'role'", "'content'", "1", "'ü'"])), ": ", self.expr(3)]
            return E("{", *items, "}")
        return E("(", self.expr(3), ", ", self.expr(3), ")")

    def sub(self, depth):
        """A subexpression; a compound one is usually parenthesised (most templates do)."""
        x = self.expr(depth + 1)
        if len(x.parts) > 1 and self.r.random() < 0.85 and x.parts[0] not in ("[", "{", "("):
            return E("(", x, ")")
        return x

    def expr(self, depth=0):
        r = self.r
        if depth >= 3 or r.random() < 0.3:
            return self.name() if r.random() < 0.55 else self.literal()
        c = r.random()
        if c < 0.2:
            op = r.choice(BINOPS)
            return E(self.sub(depth), " ", op, " ", self.sub(depth))
        if c < 0.3:
            return E(r.choice(["not ", "-", "+"]), self.sub(depth))
        if c < 0.45:
            f, a = r.choice(FILTERS)
            base = self.sub(depth)
            return E(base, "|", f, *(["(", *self.args(a, depth), ")"] if a else [])) if a or r.random() < 0.8 \
                else E(base, "|", f, "()")
        if c < 0.55:
            t, a = r.choice(TESTS)
            neg = "not " if r.random() < 0.3 else ""
            tail = ["(", *self.args(a, depth), ")"] if a and r.random() < 0.7 else ([" ", self.arg(a[0], depth + 2)] if a else [])
            if t in ("filter", "test"):
                tail = [" ", E(r.choice(["'upper'", "'nope'", "'defined'"]))]
            return E(self.sub(depth), " is ", neg, t, *tail)
        if c < 0.65:
            kind = r.choice([STRING_METHODS, DICT_METHODS, LIST_METHODS, STRING_METHODS])
            m, a = r.choice(kind)
            return E(self.sub(depth), ".", m, "(", *self.args(a, depth), ")")
        if c < 0.73:
            base = self.sub(depth)
            return r.choice([
                lambda: E(base, "[", self.arg("i", depth), "]"),
                lambda: E(base, "[", self.arg("s", depth), "]"),
                lambda: E(base, ".", r.choice(KEYS[:12] + ["0", "content", "role", "__class__", "_x", "grouper", "list",
                                                               "start", "stop", "step"])),
                lambda: E(base, "[", r.choice(["", "1", "-1", "n"]), ":", r.choice(["", "2", "-1", "m"]),
                          r.choice(["", ":-1", ":2", "::", ":0"]) if r.random() < 0.5 else "", "]"),
                lambda: E(base, "[::-1]"),
            ])()
        if c < 0.8:
            if r.random() < 0.5:
                return E(self.sub(depth), " if ", self.sub(depth), " else ", self.sub(depth))
            return E(self.sub(depth), " if ", self.sub(depth))
        if c < 0.86:
            return E(self.sub(depth), " ", r.choice(["<", "==", "<=", "!=", "in"]), " ", self.sub(depth),
                     " ", r.choice(["<", "==", ">", "!="]), " ", self.sub(depth))
        if c < 0.92 and self.macros:
            name, count = r.choice(self.macros)
            n = r.randint(0, count + 1)
            return E(name, "(", *self.args(["e"] * n, depth), ")")
        if c < 0.96:
            return r.choice([
                lambda: E("range(", self.arg("i", depth), ")"),
                lambda: E("range(", self.arg("i", depth), ", ", self.arg("i", depth), ")"),
                lambda: E("range(", self.arg("i", depth), ", ", self.arg("i", depth), ", ", E(r.choice(["1", "-1", "2", "0"])), ")"),
                lambda: E("dict(a=", self.sub(depth), ", b=", self.sub(depth), ")"),
                lambda: E("namespace(x=", self.sub(depth), ").x"),
                lambda: E("(", self.sub(depth), ")"),
                lambda: E(self.literal(), " ", self.literal()) if r.random() < 0.3 else E("'a' 'b'"),
            ])()
        return E("(", self.sub(depth), ")")

    # --- statements
    def ws_open(self, kind="%"):
        c = self.r.random()
        return "{" + kind + ("-" if c < 0.25 else "+" if c < 0.35 and kind == "%" else "") + " "

    def ws_close(self, kind="%"):
        c = self.r.random()
        return " " + ("-" if c < 0.25 else "+" if c < 0.35 and kind == "%" else "") + kind + "}"

    def tag(self, *inner):
        return [self.ws_open(), *inner, self.ws_close()]

    def text(self):
        r = self.r
        return N("text", "".join(r.choice(TEXTS) for _ in range(r.randint(1, 3))))

    def body(self, depth):
        items = []
        for _ in range(self.r.randint(1, 3)):
            items.append(self.stmt(depth + 1))
        return B(items)

    def stmt(self, depth=0):
        r = self.r
        self.budget -= 1
        if depth >= 4 or self.budget <= 0:
            c = r.random()
            if c < 0.5:
                return S(self.text())
            return S(self.ws_open("{").replace("+", ""), self.expr(), self.ws_close("}").replace("+", ""))
        c = r.random()
        if c < 0.18:
            return S(self.text())
        if c < 0.38:
            return S(self.ws_open("{").replace("+", ""), self.expr(), self.ws_close("}").replace("+", ""))
        if c < 0.5:
            parts = [*self.tag("if ", self.expr()), self.body(depth)]
            for _ in range(r.randint(0, 2)):
                parts += [*self.tag("elif ", self.expr()), self.body(depth)]
            if r.random() < 0.5:
                parts += [*self.tag("else"), self.body(depth)]
            parts += self.tag("endif")
            return S(*parts)
        if c < 0.64:
            var = r.choice(["x", "y", "item", "message"])
            target = var
            it = self.sub(0)
            if r.random() < 0.25:
                target = var + ", v"
                it = r.choice([E(r.choice(["d", "nested", "messages[0]", "l", "{'a': 1, 'b': [2]}"]), ".items()"),
                               E(r.choice(["messages", "l", "strs", "tools"]), "|groupby(", E(r.choice(["'role'", "'content'", "0", "'type'"])), ")")])
            elif r.random() < 0.3:
                it = E(r.choice(["messages", "l", "nums", "strs", "range(n)", "s", "d", "[1, 2, 3]", "tools"]))
            self.loops.append(var)
            was = self.in_loop
            self.in_loop = True
            cond = [" if ", self.expr(1)] if r.random() < 0.2 else []
            rec = [" recursive"] if r.random() < 0.05 else []
            body = self.body(depth)
            if r.random() < 0.3:
                body.parts.append(S(*self.tag("if ", self.expr(1)), S(*self.tag(r.choice(["break", "continue"]))), *self.tag("endif")))
            self.in_loop = was
            self.loops.pop()
            parts = [*self.tag("for ", target, " in ", it, *cond, *rec), body]
            if r.random() < 0.25:
                parts += [*self.tag("else"), self.body(depth)]
            parts += self.tag("endfor")
            return S(*parts)
        if c < 0.74:
            var = r.choice(["x", "y", "acc", "s", "n"])
            if var not in self.names:
                self.names.append(var)
            if self.namespaces and r.random() < 0.4:
                return S(*self.tag("set ", r.choice(self.namespaces), ".", r.choice(["a", "found", "x"]), " = ", self.expr(1)))
            if r.random() < 0.2:
                return S(*self.tag("set ", var, ", w = ", self.expr(1)))
            return S(*self.tag("set ", var, " = ", self.expr(1)))
        if c < 0.79:
            var = r.choice(["blk", "x"])
            if var not in self.names:
                self.names.append(var)
            filt = ["|", r.choice(["upper", "trim", "length", "tojson", "indent(2)"])] if r.random() < 0.3 else []
            return S(*self.tag("set ", var, *filt), self.body(depth), *self.tag("endset"))
        if c < 0.82:
            ns = r.choice(["ns", "ns2"])
            if ns not in self.namespaces:
                self.namespaces.append(ns)
            return S(*self.tag("set ", ns, " = namespace(", r.choice(["", "a=0", "found=false, a=''", "x=l"]), ")"))
        if c < 0.87:
            name = r.choice(["m1", "m2", "render"])
            params = r.choice([[], ["a"], ["a", "b=1"], ["a='x'", "b=none"], ["x", "y", "z=[]"]])
            saved = list(self.names)
            for p in params:
                self.names.append(p.split("=")[0])
            was = self.in_macro_caller
            self.in_macro_caller = True
            body = self.body(depth)
            self.in_macro_caller = was
            self.names = saved
            self.macros = [(m, k) for m, k in self.macros if m != name] + [(name, len(params))]
            return S(*self.tag("macro ", name, "(", ", ".join(params), ")"), body, *self.tag("endmacro"))
        if c < 0.9 and self.macros:
            name, count = r.choice(self.macros)
            params = r.choice(["", "(z)"])
            return S(*self.tag("call", params, " ", name, "(", *self.args(["e"] * r.randint(0, count), 1), ")"),
                     self.body(depth), *self.tag("endcall"))
        if c < 0.92:
            f = r.choice(["upper", "trim", "indent(2)", "replace('a', 'b')", "lower|title", "center(20)"])
            return S(*self.tag("filter ", f), self.body(depth), *self.tag("endfilter"))
        if c < 0.94:
            return S(*self.tag("raw"), N("text", r.choice(["{{ x }}", "{% if %}", " a {# c #} ", "\n{{- y -}}\n"])), *self.tag("endraw"))
        if c < 0.96:
            return S(self.ws_open("#"), N("text", r.choice(["c", " comment ", "multi\nline"])), self.ws_close("#"))
        if c < 0.98:
            return S(*self.tag("generation"), self.body(depth), *self.tag("endgeneration"))
        return S(*self.tag("with ", r.choice(["x = 1", "y = s, x = n"])), self.body(depth), *self.tag("endwith"))

    def template(self):
        self.budget = self.r.randint(4, 14)
        items = [self.stmt(0) for _ in range(self.r.randint(1, 5))]
        return B(items)


# ---------------------------------------------------------------------------------------------
# Running both engines.

# CPython's `<... at 0x7f2c78f32ce0>`; our engine prints a placeholder address of the same length
# there. Case-insensitive: filters such as `upper` and `title` run over the repr.
ADDRESS = re.compile(r"(?i)(0x)[0-9a-f]{9,16}(?![0-9a-f])")
# jinja2's reprs of Python functions and classes (`<function make_environment.<locals>.raise_exception
# at 0x...>`, `<class 'range'>`, `<jinja2.utils.Joiner object>`), and ours of a global.
PYTHON_CALLABLE = re.compile(r"<(?:function|class|bound method|jinja2\.)(?:[^<>]|<[^<>]*>)*>")
OUR_CALLABLE = re.compile(r"<built-in function \w+>")


def without_addresses(text):
    """The text with the hexadecimal digits of every object address taken out."""
    return ADDRESS.sub(lambda m: m.group(1), text)


def texts(ref, ours):
    return [x.get("output") or x.get("error") or "" for x in (ref, ours)]


def both_output(ref, ours):
    return "output" in ref and "output" in ours


# Differences no engine but CPython's can reproduce, each with why: a case in one of these
# classes is counted under the class's name and reported, not as a mismatch. The first two
# take the unmatchable part out and still need the rest of the output to agree.
KNOWN_CLASSES = [
    ("address", "CPython prints an object's memory address in its repr (generators, iterators, "
                "bound methods); the outputs agree once it is taken out (where a template takes the "
                "repr apart, the characters that change from one jinja2 render to the next)",
     lambda ref, ours, job, runner: both_output(ref, ours) and (
         ADDRESS.search(ref["output"]) is not None
         and without_addresses(ref["output"]) == without_addresses(ours["output"])
         or agrees_but_for_addresses(ref["output"], ours["output"], job, runner))),
    ("python-callable-repr", "jinja2 prints the Python function or class behind a global (module "
                             "path, qualified name, address), ours the global's name; the outputs "
                             "agree once both are taken out",
     lambda ref, ours, job, runner: both_output(ref, ours) and PYTHON_CALLABLE.search(ref["output"]) is not None
     and PYTHON_CALLABLE.sub("<callable>", without_addresses(ref["output"]))
     == OUR_CALLABLE.sub("<callable>", without_addresses(ours["output"]))),
    ("unbounded-int", "Python's integers are unbounded, ours are 64-bit (a number of 19 or more "
                      "digits, or an overflow error on one side)",
     lambda ref, ours, job, runner: any(re.search(r"\d{19,}", t) for t in texts(ref, ours))
     or any("overflow" in (x.get("error") or "").lower() for x in (ref, ours))),
]


def agrees_but_for_addresses(want, got, job, runner):
    """Whether `got` (ours, with its placeholder address 0x000000000000) is jinja2's output `want`
    but for characters that come from an address: jinja2 renders the job twice more, with
    objects allocated in between so that new objects land elsewhere; the output must change
    (so an address is in it), and where ours differs, jinja2's character must be one that
    changed, or a hexadecimal digit where ours has the placeholder's 0."""
    if job is None or runner is None or len(want) != len(got):
        return False
    renders, hold = [], []
    for _ in range(2):
        hold.append([(x for x in ()) for _ in range(64)] + [reversed([]) for _ in range(64)] + [iter({}.items()) for _ in range(64)])
        r = runner.reference([job])[0]
        if "output" not in r or len(r["output"]) != len(want):
            return False
        renders.append(r["output"])
    changed = {i for i in range(len(want)) if any(r[i] != want[i] for r in renders)}
    if not changed:
        return False
    return all(i in changed or (c in "0123456789abcdefABCDEF" and d == "0")
               for i, (c, d) in enumerate(zip(want, got)) if c != d)


def known_class(ref, ours, job=None, runner=None):
    """The name of the known class the disagreement falls in, or None."""
    for name, _, applies in KNOWN_CLASSES:
        if applies(ref, ours, job, runner):
            return name
    return None


def classify(ref, ours, job=None, runner=None):
    """None when they agree; `known:NAME` for a known class; else the kind of mismatch."""
    if "crash" in ours:
        return "crash"
    if "output" in ref and "output" in ours and ref["output"] == ours["output"]:
        return None
    if "error" in ref and "error" in ours:
        return None
    known = known_class(ref, ours, job, runner)
    if known:
        return "known:" + known
    if "output" in ref and "output" in ours:
        return "output"
    if "Timeout" == ref.get("type"):
        return "timeout-ours-renders"
    return "ours-raises" if "error" in ours else "jinja2-raises"


class Runner:
    def __init__(self, binary, timeout):
        self.binary = binary
        self.timeout = timeout
        self.execs = 0

    def reference(self, jobs):
        return jinja_reference.render_jobs(jobs, self.timeout)

    def ours(self, jobs):
        """Our results by job; a crash of the batch is narrowed down to its job(s)."""
        self.execs += len(jobs)
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
            json.dump(jobs, f, ensure_ascii=False)
            path = f.name
        try:
            p = subprocess.run([self.binary, "template", "render", "--jobs", path], capture_output=True,
                               timeout=max(60, 2 * len(jobs)))
            if p.returncode == 0:
                return json.loads(p.stdout.decode("utf-8"))
            crash = "exit %d: %s" % (p.returncode, p.stderr.decode("utf-8", "replace")[-2000:])
        except subprocess.TimeoutExpired:
            crash = "timed out"
        finally:
            os.unlink(path)
        if len(jobs) == 1:
            return [{"id": jobs[0]["id"], "crash": crash, "error": crash}]
        mid = len(jobs) // 2
        return self.ours(jobs[:mid]) + self.ours(jobs[mid:])

    def both(self, jobs):
        ref = self.reference(jobs)
        ours = self.ours(jobs)
        return ref, ours


# ---------------------------------------------------------------------------------------------
# Minimising.

def reductions(tree):
    """One-step smaller variants of the tree."""
    out = []

    def walk(node, replace):
        for i, p in enumerate(node.parts):
            if isinstance(p, str):
                continue

            def rep(new, i=i, node=node):
                old = node.parts[i]
                node.parts[i] = new
                t = replace()
                node.parts[i] = old
                return t

            if node.sort == "body" and len(node.parts) > 1:
                out.append(rep_remove(node, i, replace))
            if p.sort == "expr":
                for q in p.parts:
                    if isinstance(q, N) and q.sort == "expr":
                        out.append(rep(q))
                if p.render() not in ("1", "''", "s"):
                    out.append(rep(E("1")))
                    out.append(rep(E("s")))
            if p.sort == "stmt":
                for q in p.parts:
                    if isinstance(q, N) and q.sort == "body":
                        out.append(rep(S(q)))
                if p.render() != "":
                    out.append(rep(S(N("text", ""))))
            if p.sort == "text" and p.render() not in ("", "a"):
                out.append(rep(N("text", "a")))
                out.append(rep(N("text", "")))
            walk(p, replace)

    def rep_remove(node, i, replace):
        old = node.parts
        node.parts = old[:i] + old[i + 1:]
        t = replace()
        node.parts = old
        return t

    walk(tree, lambda: tree.copy())
    seen, unique = set(), []
    for t in out:
        k = t.render()
        if k not in seen:
            seen.add(k)
            unique.append(t)
    return unique


def context_reductions(ctx):
    out = []
    for k in ctx:
        c = dict(ctx)
        del c[k]
        out.append(c)
    for k, v in ctx.items():
        if isinstance(v, (list, dict)) and v:
            c = dict(ctx)
            if isinstance(v, list):
                for i in range(len(v)):
                    c2 = dict(ctx)
                    c2[k] = v[:i] + v[i + 1:]
                    out.append(c2)
            else:
                for kk in v:
                    c2 = dict(ctx)
                    c2[k] = {a: b for a, b in v.items() if a != kk}
                    out.append(c2)
    return out


def minimise(runner, tree, ctx, kind, deadline, rounds=40):
    """Greedy: the first one-step reduction with the same kind of mismatch, until none is."""
    for _ in range(rounds):
        if time.time() > deadline:
            break
        candidates = [(t, ctx) for t in reductions(tree)] + [(tree, c) for c in context_reductions(ctx)]
        if not candidates:
            break
        jobs = [{"id": str(i), "source": t.render(), "context": c, "now": NOW} for i, (t, c) in enumerate(candidates)]
        ref, ours = runner.both(jobs)
        for (t, c), job, a, b in zip(candidates, jobs, ref, ours):
            if classify(a, b, job, runner) == kind:
                tree, ctx = t, c
                break
        else:
            break
    return tree, ctx


# ---------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--batch", type=int, default=400)
    ap.add_argument("--binary", default=os.path.join(HERE, "..", ".build", "debug", "llama-swift"))
    ap.add_argument("--out", default=os.path.join(HERE, "..", ".build", "fuzz-jinja"))
    ap.add_argument("--timeout", type=float, default=2.0, help="seconds jinja2 may take for one case")
    ap.add_argument("--max-reports", type=int, default=30, help="stop minimising after this many mismatches")
    ap.add_argument("--no-minimise", action="store_true")
    args = ap.parse_args()

    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    r = random.Random(seed)
    runner = Runner(os.path.abspath(args.binary), args.timeout)
    if not os.access(runner.binary, os.X_OK):
        print(f"fuzz_jinja: {runner.binary} is not built: swift build --product llama-swift", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    # A private copy: a build relinking the binary meanwhile must not stop the run.
    private = os.path.join(args.out, "llama-swift")
    if os.path.abspath(private) != runner.binary:
        shutil.copy2(runner.binary, private)
        runner.binary = private
    print(f"fuzz_jinja: seed {seed}, {args.seconds:g} s", flush=True)

    start = time.time()
    cases = 0
    counts = {}
    known = {}
    found = []  # (kind, source, context, ref, ours)
    seen_minimal = set()
    fuzz_time = 0.0
    while time.time() - start < args.seconds:
        t0 = time.time()
        batch = []
        for i in range(args.batch):
            g = Gen(r)
            tree = g.template()
            batch.append((tree, rand_context(r)))
        jobs = [{"id": str(i), "source": t.render(), "context": c, "now": NOW} for i, (t, c) in enumerate(batch)]
        ref, ours = runner.both(jobs)
        fuzz_time += time.time() - t0
        cases += len(jobs)
        for (tree, ctx), job, a, b in zip(batch, jobs, ref, ours):
            kind = classify(a, b, job, runner)
            if kind is None:
                continue
            if kind.startswith("known:"):
                known[kind[6:]] = known.get(kind[6:], 0) + 1
                continue
            counts[kind] = counts.get(kind, 0) + 1
            if len(found) >= args.max_reports:
                continue
            if not args.no_minimise:
                tree, ctx = minimise(runner, tree, ctx, kind, start + args.seconds)
            source = tree.render()
            if (kind, source) in seen_minimal:
                continue
            seen_minimal.add((kind, source))
            job = {"id": "m%d" % len(found), "source": source, "context": ctx, "now": NOW}
            (a2,), (b2,) = runner.both([job])
            found.append((kind, job, a2, b2))
            print(f"\n--- mismatch {len(found)} ({kind})\n    template: {source!r}\n    context:  {json.dumps(ctx, ensure_ascii=False)}"
                  f"\n    jinja2:   {summary(a2)}\n    ours:     {summary(b2)}", flush=True)
    elapsed = time.time() - start
    with open(os.path.join(args.out, "mismatches.json"), "w", encoding="utf-8") as f:
        json.dump([{"kind": k, **j, "jinja2": a, "ours": b} for k, j, a, b in found], f, ensure_ascii=False, indent=1)
    total = sum(counts.values())
    reasons = {name: reason for name, reason, _ in KNOWN_CLASSES}
    with open(os.path.join(args.out, "summary.json"), "w", encoding="utf-8") as f:
        json.dump({"seed": seed, "cases": cases, "seconds": round(elapsed, 1),
                   "cases_per_second": round(cases / fuzz_time, 1) if fuzz_time else 0,
                   "mismatches": counts, "distinct_minimised": len(found),
                   "known": {k: {"cases": v, "reason": reasons[k]} for k, v in sorted(known.items())}}, f, indent=1)
    print(f"\nfuzz_jinja: seed {seed}: {cases} cases in {elapsed:.0f} s "
          f"({cases / fuzz_time:.0f} cases/s while fuzzing), {total} mismatching "
          f"({', '.join(f'{k} {v}' for k, v in sorted(counts.items())) or 'none'}), {len(found)} distinct minimised "
          f"-> {os.path.join(args.out, 'mismatches.json')}")
    print("fuzz_jinja: known classes (not mismatches): "
          + (", ".join(f"{k} {v}" for k, v in sorted(known.items())) or "none"))
    for k in sorted(known):
        print(f"  {k}: {reasons[k]}")
    return 1 if total else 0


def summary(x):
    if "output" in x:
        return "output " + json.dumps(x["output"], ensure_ascii=False)[:300]
    return f"error ({x.get('type')}) " + json.dumps(x.get("error"), ensure_ascii=False)[:300]


if __name__ == "__main__":
    sys.exit(main())

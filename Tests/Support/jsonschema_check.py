"""Python's jsonschema, the tests' reference validator, over a JSON file of records:
{"name", "schema", "valid": [text], "invalid": [text], "check_schema": bool}. Every valid text must
parse and validate, every invalid text must fail to; check_schema also checks the schema against its
metaschema. Prints each disagreement and a count; exit 1 when any, 3 when jsonschema is missing."""
import json
import sys

try:
    import jsonschema
except ImportError:
    print("jsonschema is not importable by " + sys.executable + ": run `make deps` (pip install jsonschema)")
    sys.exit(3)

bad = 0
total = 0
for r in json.load(open(sys.argv[1])):
    cls = jsonschema.validators.validator_for(r["schema"])
    if r.get("check_schema"):
        cls.check_schema(r["schema"])
    v = cls(r["schema"], format_checker=cls.FORMAT_CHECKER)
    for expected, key in ((True, "valid"), (False, "invalid")):
        for text in r.get(key, []):
            total += 1
            try:
                errors = [e.message for e in v.iter_errors(json.loads(text))]
            except ValueError as e:
                errors = ["not JSON: %s" % e]
            if (not errors) != expected:
                bad += 1
                print("%s: expected %s, got %s: %r" % (r["name"], key, "; ".join(errors) or "valid", text))
print("checked %d documents, %d bad" % (total, bad))
sys.exit(1 if bad else 0)

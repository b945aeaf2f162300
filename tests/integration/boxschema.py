"""Validate Box API JSON bodies against the schemas of Box's OpenAPI spec.

    from boxschema import SPEC_PATH, validate, errors
    validate("File--Full", obj)    # raises SchemaError listing every error
    errors("Files", obj) -> [str]

The spec is looked up at $BOX_OPENAPI, <repo>/../shared/spec/box-openapi.json
and /work/shared/spec/box-openapi.json.  SPEC_PATH is None when none exists;
tests then skip (`pytest.skip(MISSING)`).

OpenAPI 3.0 is not JSON Schema: the document is converted once, in memory,
before use.  `nullable: true` becomes "also null" (type lists, enums, and an
anyOf around $ref/allOf, whose siblings a JSON Schema validator ignores);
OpenAPI-only keywords (discriminator, example, x-*, readOnly...) are dropped
by being ignored.  $refs resolve inside the whole converted document.
Formats are not checked here (the tests check times themselves).
"""

import copy
import json
import os
import pathlib

try:
    import jsonschema
except ImportError:         # pragma: no cover - python3-jsonschema missing
    jsonschema = None

REPO = pathlib.Path(__file__).resolve().parents[2]
_CANDIDATES = [os.environ.get("BOX_OPENAPI"),
               str(REPO.parent / "shared/spec/box-openapi.json"),
               "/work/shared/spec/box-openapi.json"]
SPEC_PATH = next((p for p in _CANDIDATES if p and os.path.isfile(p)), None)
MISSING = ("Box OpenAPI spec not found (looked at %s): schema validation "
           "skipped" % ", ".join(p for p in _CANDIDATES if p)) \
    if SPEC_PATH else None
if jsonschema is None:
    MISSING = "python3-jsonschema is not installed: schema validation skipped"
    SPEC_PATH = None


class SchemaError(AssertionError):
    pass


def _nullable(node):
    """Rewrites one schema object carrying nullable: true."""
    node = dict(node)
    node.pop("nullable", None)
    if "$ref" in node or "allOf" in node or "anyOf" in node or \
            "oneOf" in node or "type" not in node:
        return {"anyOf": [node, {"type": "null"}]}
    t = node["type"]
    node["type"] = (t if isinstance(t, list) else [t]) + ["null"]
    if "enum" in node and None not in node["enum"]:
        node["enum"] = list(node["enum"]) + [None]
    return node


def _convert(node):
    if isinstance(node, list):
        return [_convert(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _convert(v) for k, v in node.items()}
    # Metadata schemas have a *property* named "$id"; jsonschema's resolver
    # takes any "$id" key for a schema id and chokes on the dict.  Those
    # properties are not in any response this suite checks.
    if isinstance(out.get("$id"), dict):
        out["x-property-$id"] = out.pop("$id")
    if out.get("nullable") is True:
        out = _nullable(out)
    else:
        out.pop("nullable", None)
    return out


def _relax(schemas):
    """ClientError.code is an enum of a few generic codes in the spec, yet
    Box answers with specific ones (item_name_in_use, session_expired...,
    box-api.md 1.4): only the type (string) is kept."""
    code = schemas.get("ClientError", {}).get("properties", {}).get("code")
    if isinstance(code, dict):
        code.pop("enum", None)


_doc = None
_validators = {}


def _load():
    global _doc
    if _doc is None:
        with open(SPEC_PATH) as f:
            raw = json.load(f)
        # Only the components are schemas; converting paths is not needed.
        _doc = {"components": {"schemas": _convert(
            copy.deepcopy(raw["components"]["schemas"]))}}
        _relax(_doc["components"]["schemas"])
    return _doc


def has(name):
    return SPEC_PATH is not None and name in _load()["components"]["schemas"]


def validator(name):
    if SPEC_PATH is None:
        raise SchemaError(MISSING)
    v = _validators.get(name)
    if v is None:
        doc = _load()
        if name not in doc["components"]["schemas"]:
            raise SchemaError("no schema %r in %s" % (name, SPEC_PATH))
        resolver = jsonschema.RefResolver("urn:box-openapi", doc)
        v = jsonschema.Draft7Validator(
            {"$ref": "#/components/schemas/" + name}, resolver=resolver)
        _validators[name] = v
    return v


def errors(name, obj):
    """Every schema error, as "at <json path>: <message>" strings."""
    out = []
    for e in validator(name).iter_errors(obj):
        where = "/".join(str(p) for p in e.absolute_path) or "(top)"
        out.append("at %s: %s" % (where, e.message[:300]))
    return out


def validate(name, obj):
    errs = errors(name, obj)
    if errs:
        raise SchemaError("response does not match schema %s:\n  %s\n"
                          "object: %s" % (name, "\n  ".join(errs[:20]),
                                          json.dumps(obj)[:2000]))
    return obj

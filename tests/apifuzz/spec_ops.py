"""The operations of docs/openapi.yaml as plain objects the fuzzer generates requests for.

    ops = spec_ops.load()          # [Operation], in document order
    op.op_id, op.method, op.template, op.params, op.body, op.public, op.via_gateway, op.via_instance

Every `$ref` of a parameter or request body is resolved here (through openapi_check.resolve, so
the e2e checks and the fuzzer read the document the same way); schemas keep their inner `$ref`s,
which schema_gen resolves lazily. Path-level parameters are merged into each operation (an
operation's own parameter of the same name and location wins, as OpenAPI says).

Where a request goes: an operation whose `servers` list only the instance server is served on the
instances' own ports (Nginx answers its JSON 404 for it), one without `servers` or listing the
gateway goes through Nginx; /health/live lists both and is sent both ways.
"""

import collections
import re

import openapi_check as oc

METHODS = ("get", "put", "post", "delete", "patch")

Param = collections.namedtuple("Param", "name location required schema")


class Operation:
    def __init__(self, template, method, op, path_params):
        self.template = template
        self.method = method.upper()
        self.op_id = op.get("operationId") or "%s %s" % (self.method, template)
        params = collections.OrderedDict()
        for raw in list(path_params) + list(op.get("parameters") or []):
            p = oc.resolve(raw)
            params[(p["name"], p["in"])] = Param(p["name"], p["in"], bool(p.get("required")), p.get("schema") or {})
        self.params = list(params.values())
        self.body = None              # {media type: schema} when the operation documents a body
        self.body_required = False
        if op.get("requestBody"):
            rb = oc.resolve(op["requestBody"])
            self.body = collections.OrderedDict((mt, (m or {}).get("schema") or {})
                                                for mt, m in (rb.get("content") or {}).items())
            self.body_required = bool(rb.get("required"))
        security = op.get("security", oc.spec().get("security") or [])
        self.schemes = sorted({name for req in security for name in req})   # e.g. ["bearerAuth"]
        self.public = security == []
        self.statuses = sorted(str(s) for s in (op.get("responses") or {}))
        servers = op.get("servers")
        if servers is None:
            self.via_gateway, self.via_instance = True, False
        else:
            descr = [str(s.get("description", "")) for s in servers]
            self.via_gateway = any("gateway" in d.lower() for d in descr)
            self.via_instance = any("instance" in d.lower() for d in descr)
        self.service = service_of(template)

    def params_in(self, location):
        return [p for p in self.params if p.location == location]

    def __repr__(self):
        return "<%s %s %s>" % (self.op_id, self.method, self.template)


def service_of(template):
    """The service that answers a path (for direct requests and for the no-write checks)."""
    if template.startswith(("/api/auth", "/api/users", "/internal/users", "/.well-known")):
        return "customers"
    if template.startswith(("/api/transactions", "/api/accounts")):
        return "transactions"
    if template.startswith(("/api/sync", "/api/job-runs", "/admin/queues")):
        return "sync"
    return None      # health and metrics: every service has them


def load():
    doc = oc.spec()
    ops = []
    for template, item in (doc.get("paths") or {}).items():
        item = oc.resolve(item)
        shared = item.get("parameters") or []
        for method in METHODS:
            if isinstance(item.get(method), dict):
                ops.append(Operation(template, method, item[method], shared))
    return ops


def path_methods(template):
    """The methods the document lists for a path, upper-case."""
    item = oc.resolve((oc.spec().get("paths") or {})[template])
    return [m.upper() for m in METHODS if isinstance(item.get(m), dict)]


def match(ops, method, path):
    """The operation a concrete path and method select ("/internal/users/bulk-upsert" with GET is
    getInternalUser), or None. Templates without parameters win over templated ones, as in the
    services' routers."""
    hits = []
    for op in ops:
        rx = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(op.template)) + "$"
        if op.method == method and re.match(rx, path):
            hits.append(op)
    hits.sort(key=lambda op: op.template.count("{"))
    return hits[0] if hits else None

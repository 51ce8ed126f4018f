#!/usr/bin/python3
"""The Kubernetes manifests against what the services really read and serve.

    k8s_reference.py BUILT.json      (written by tools/k8s-validate/validate.mjs --out)

BUILT.json maps each kustomization directory (deploy/k8s, deploy/k8s/trial) to its built objects.
For every pod template of those builds (Deployments, StatefulSets, the migrations Job):
- env: every variable (env and envFrom ConfigMaps) is one the image's program reads — a name in
  svc_config_*(…, "NAME") calls of <service>/src and shared/src (or NAME_FILE of one), or a
  SERVICE_CLIENT_<ID>_SECRET[_FILE] of an id in SERVICE_CLIENTS for customers-service, or one of
  deploy/nginx/render.sh's variables for the gateway; and every variable docker-compose.yml gives
  the same service is also given here (compose is the configuration that runs end to end);
- files: every *_FILE path lies in a mounted Secret/ConfigMap whose items (or keys) contain that
  file; Secret keys are ones deploy/k8s/create-secrets.sh creates; JWT_PUBLIC_KEYS_DIR is a mount;
- ports and probes: HTTP_PORT is the container's `http` port, probe paths are routes the service
  registers (shared/src/app.c) on a declared port, Services target declared ports of pods they
  select, and CUSTOMERS_URL / *_UPSTREAMS name a Service and port that exist;
- rollout and safety: 2 replicas, maxUnavailable 0, liveness/readiness (and startup for the
  services), preStop, a grace period covering preStop + SHUTDOWN_GRACE_MS, requests and limits,
  non-root, read-only root filesystem, no privilege escalation, all capabilities dropped; an HPA
  and a PodDisruptionBudget per Deployment of the platform; a default-deny NetworkPolicy;
- images: each platform/* image is built by a Dockerfile of the repository whose COPY sources exist.
Prints problems one per line and a count; exit 1 on any.
"""
import glob
import json
import os
import re
import shlex
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.chdir(ROOT)
problems = []


def bad(where, msg):
    line = "%s: %s" % (where, msg)
    if line not in problems:
        problems.append(line)


def names_read(src_dirs):
    names = set()
    for d in src_dirs:
        for f in glob.glob(os.path.join(d, "*.c")):
            text = open(f, encoding="utf-8").read()
            names |= set(re.findall(r'svc_config_(?:str|int|bool)\(\s*[^,]+,\s*"([A-Z][A-Z0-9_]*)"', text))
            names |= set(re.findall(r'getenv\("([A-Z][A-Z0-9_]*)"\)', text))
    return names


SERVICE_NAMES = {s: names_read([s + "-service/src", "shared/src"]) for s in ("customers", "transactions", "sync")}
RENDER_NAMES = set(re.findall(r"\$\{?([A-Z][A-Z_]*)", open("deploy/nginx/render.sh").read()))
LEGACY_NAMES = set(re.findall(r"`([A-Z_]+)`", open("docs/operations.md").read().split("### Legacy API simulator")[1].split("###")[0]))
ROUTES = set(re.findall(r'\{"GET", "(/[^"]+)"', open("shared/src/app.c").read()))
# Keys of platform-secrets: the ones deploy/k8s/create-secrets.sh puts in, each a file that
# deploy/gen-secrets.sh creates.
SECRET_KEYS = set(re.search(r"for key in ([^;]+);", open("deploy/k8s/create-secrets.sh").read().replace("\\\n", " ")).group(1).split())
GENERATED = set(re.search(r"for name in ([^;]+);", open("deploy/gen-secrets.sh").read().replace("\\\n", " ")).group(1).split())
for k in SECRET_KEYS - GENERATED - {"jwt-private.pem"}:
    problems.append("deploy/k8s/create-secrets.sh: key %s is not a file deploy/gen-secrets.sh creates" % k)
CONFIGMAPS_OUTSIDE = {"jwt-public-keys": {"jwt-private.pub.pem"}}  # created by create-secrets.sh

compose = yaml.safe_load(subprocess.run(["docker-compose", "-f", "docker-compose.yml", "config"],
                                        capture_output=True, text=True, check=True).stdout)["services"]


def program_of(image):
    base = image.split(":")[0].split("/")[-1]
    m = re.match(r"(customers|transactions|sync)-service$", base)
    return m.group(1) if m else base


def pod_specs(objects):
    for o in objects:
        spec = o.get("spec") or {}
        tpl = spec.get("template") or (spec.get("jobTemplate") or {}).get("spec", {}).get("template")
        if tpl:
            yield o, tpl


def check_build(where, objects):
    by_kind = {}
    for o in objects:
        by_kind.setdefault(o["kind"], {})[o["metadata"]["name"]] = o
    configmaps = {n: set((o.get("data") or {})) for n, o in by_kind.get("ConfigMap", {}).items()}
    configmaps.update(CONFIGMAPS_OUTSIDE)
    cm_data = {n: o.get("data") or {} for n, o in by_kind.get("ConfigMap", {}).items()}
    services = by_kind.get("Service", {})
    pods = list(pod_specs(objects))

    if not any(not (np["spec"].get("podSelector") or {}) and set(np["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
               and not np["spec"].get("ingress") and not np["spec"].get("egress")
               for np in by_kind.get("NetworkPolicy", {}).values()):
        bad(where, "no default-deny NetworkPolicy (empty podSelector, Ingress and Egress, no rules)")

    for o, tpl in pods:
        w = "%s %s/%s" % (where, o["kind"], o["metadata"]["name"])
        ps = tpl["spec"]
        labels = (tpl.get("metadata") or {}).get("labels") or {}
        volumes = {v["name"]: v for v in ps.get("volumes", [])}
        psc = ps.get("securityContext") or {}
        if psc.get("runAsNonRoot") is not True:
            bad(w, "pod securityContext.runAsNonRoot is not true")
        if (psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            bad(w, "pod seccompProfile is not RuntimeDefault")
        if ps.get("automountServiceAccountToken") is not False:
            bad(w, "automountServiceAccountToken is not false")
        for c in ps.get("initContainers", []) + ps.get("containers", []):
            cw = "%s container %s" % (w, c["name"])
            sc = c.get("securityContext") or {}
            if sc.get("allowPrivilegeEscalation") is not False or sc.get("readOnlyRootFilesystem") is not True \
                    or (sc.get("capabilities") or {}).get("drop") != ["ALL"]:
                bad(cw, "securityContext must set allowPrivilegeEscalation false, readOnlyRootFilesystem true, drop [ALL]")
            res = c.get("resources") or {}
            for k in ("requests", "limits"):
                if not {"cpu", "memory"} <= set(res.get(k) or {}):
                    bad(cw, "resources.%s needs cpu and memory" % k)
            env = {}
            for ef in c.get("envFrom", []):
                name = (ef.get("configMapRef") or {}).get("name")
                if name not in cm_data:
                    bad(cw, "envFrom ConfigMap %r is not defined" % name)
                    continue
                env.update(cm_data[name])
            for e in c.get("env", []):
                env[e["name"]] = e.get("value", "<from %s>" % list((e.get("valueFrom") or {"?": 0}))[0])
            prog = program_of(c["image"])
            mounts = {m["mountPath"].rstrip("/"): m for m in c.get("volumeMounts", [])}
            ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}

            # --- env names ---
            if prog in SERVICE_NAMES:
                readable = SERVICE_NAMES[prog]
                clients = [x.strip().upper().replace("-", "_") for x in env.get("SERVICE_CLIENTS", "").split(",") if x.strip()]
                for n in env:
                    base = n[:-5] if n.endswith("_FILE") else n
                    ok = n in readable or base in readable
                    if prog == "customers" and re.fullmatch(r"SERVICE_CLIENT_([A-Z0-9_]+)_SECRET", base):
                        ok = re.fullmatch(r"SERVICE_CLIENT_([A-Z0-9_]+)_SECRET", base).group(1) in clients
                    if not ok:
                        bad(cw, "sets %s, which %s-service never reads" % (n, prog))
                ref = "%s-1" % prog
                for n in (compose.get(ref, {}).get("environment") or {}):
                    if n not in env:
                        bad(cw, "does not set %s, which docker-compose gives %s" % (n, ref))
                if str(env.get("HTTP_PORT")) != str(ports.get("http", env.get("HTTP_PORT"))):
                    bad(cw, "HTTP_PORT %s is not the container's http port %s" % (env.get("HTTP_PORT"), ports.get("http")))
            elif prog == "nginx":
                for n in env:
                    if n not in RENDER_NAMES:
                        bad(cw, "sets %s, which deploy/nginx/render.sh does not read" % n)
                for n in (compose["nginx"].get("environment") or {}):
                    if n not in env:
                        bad(cw, "does not set %s, which docker-compose gives nginx" % n)
                if str(ports.get("internal")) != str(env.get("INTERNAL_LISTEN")):
                    bad(cw, "INTERNAL_LISTEN %s is not the container's internal port" % env.get("INTERNAL_LISTEN"))
                for n in ("CUSTOMERS_UPSTREAMS", "TRANSACTIONS_UPSTREAMS", "SYNC_UPSTREAMS"):
                    for hp in env.get(n, "").split():
                        host, port = hp.rsplit(":", 1)
                        if host not in services or int(port) not in [p["port"] for p in services[host]["spec"]["ports"]]:
                            bad(cw, "%s names %s, not a Service port of this build" % (n, hp))
            elif prog == "legacy-api":
                for n in env:
                    if n not in LEGACY_NAMES:
                        bad(cw, "sets %s, which the legacy API simulator does not read" % n)

            # --- secret files and key directories ---
            for n, v in env.items():
                if not (n.endswith("_FILE") or n in ("JWT_PUBLIC_KEYS_DIR", "SECRETS_DIR")) or not v.startswith("/"):
                    continue
                is_dir = not n.endswith("_FILE")
                mdir = v.rstrip("/") if is_dir else os.path.dirname(v)
                m = mounts.get(mdir)
                if not m:
                    bad(cw, "%s=%s is not inside a volume mount" % (n, v))
                    continue
                vol = volumes.get(m["name"]) or {}
                src = vol.get("secret") or vol.get("configMap")
                if not src:
                    bad(cw, "%s=%s: volume %s is not a Secret or ConfigMap" % (n, v, m["name"]))
                    continue
                kind_keys = SECRET_KEYS if "secret" in vol else configmaps.get(src.get("name"), set())
                if "configMap" in vol and src.get("name") not in configmaps:
                    bad(cw, "ConfigMap %s is not defined" % src.get("name"))
                items = src.get("items")
                for it in items or []:
                    if it["key"] not in kind_keys:
                        bad(cw, "volume %s uses key %s, which is not created (deploy/gen-secrets.sh, create-secrets.sh)" % (m["name"], it["key"]))
                if not is_dir:
                    files = [it["path"] for it in items] if items else list(kind_keys)
                    if os.path.basename(v) not in files:
                        bad(cw, "%s=%s: volume %s has no such file (has %s)" % (n, v, m["name"], ", ".join(files)))

            # --- probes and lifecycle ---
            is_service = prog in SERVICE_NAMES and o["kind"] == "Deployment"
            needed = ("startupProbe", "livenessProbe", "readinessProbe") if is_service else \
                (("livenessProbe", "readinessProbe") if o["kind"] != "Job" else ())
            for pname in needed:
                if pname not in c:
                    bad(cw, "no %s" % pname)
            for pname in ("startupProbe", "livenessProbe", "readinessProbe"):
                hg = (c.get(pname) or {}).get("httpGet")
                if not hg:
                    continue
                if hg["port"] not in ports and hg["port"] not in ports.values():
                    bad(cw, "%s port %s is not a container port" % (pname, hg["port"]))
                if prog in SERVICE_NAMES and hg["path"] not in ROUTES:
                    bad(cw, "%s path %s is not a route of the service (shared/src/app.c)" % (pname, hg["path"]))
            if is_service:
                if (c.get("readinessProbe") or {}).get("httpGet", {}).get("path") != "/health/ready":
                    bad(cw, "readiness must be /health/ready")
                if (c.get("livenessProbe") or {}).get("httpGet", {}).get("path") != "/health/live":
                    bad(cw, "liveness must be /health/live")
            if o["kind"] == "Deployment" and labels.get("app.kubernetes.io/component") in ("api", "gateway"):
                pre = (((c.get("lifecycle") or {}).get("preStop") or {}).get("exec") or {}).get("command") or []
                if pre[:1] != ["sleep"]:
                    bad(cw, "no preStop sleep")
                pre_s = int(pre[1]) if len(pre) > 1 else 0
                need = pre_s + int(env.get("SHUTDOWN_GRACE_MS", "0")) // 1000
                if ps.get("terminationGracePeriodSeconds", 30) <= need:
                    bad(w, "terminationGracePeriodSeconds %s does not cover preStop + SHUTDOWN_GRACE_MS (%d s)" % (
                        ps.get("terminationGracePeriodSeconds", 30), need))
            if "CUSTOMERS_URL" in env:
                mm = re.match(r"https?://([^:/]+)(?::(\d+))?", env["CUSTOMERS_URL"])
                host, port = mm.group(1), int(mm.group(2) or 80)
                svc = services.get(host)
                if not svc or port not in [p["port"] for p in svc["spec"]["ports"]]:
                    bad(cw, "CUSTOMERS_URL %s names no Service port of this build" % env["CUSTOMERS_URL"])
                elif svc["spec"]["selector"].get("app.kubernetes.io/name") != "gateway":
                    bad(cw, "CUSTOMERS_URL must go through the east-west gateway, not %s" % host)

        # --- rollout ---
        if o["kind"] == "Deployment" and labels.get("app.kubernetes.io/component") in ("api", "gateway"):
            spec = o["spec"]
            ru = (spec.get("strategy") or {}).get("rollingUpdate") or {}
            if spec.get("replicas") != 2 or ru.get("maxUnavailable") != 0:
                bad(w, "needs replicas 2 and rollingUpdate.maxUnavailable 0")
            name = o["metadata"]["name"]
            hpa = [h for h in by_kind.get("HorizontalPodAutoscaler", {}).values() if h["spec"]["scaleTargetRef"]["name"] == name]
            pdb = [p for p in by_kind.get("PodDisruptionBudget", {}).values()
                   if all(labels.get(k) == v for k, v in p["spec"]["selector"]["matchLabels"].items())]
            if not hpa:
                bad(w, "no HorizontalPodAutoscaler")
            if not pdb:
                bad(w, "no PodDisruptionBudget")

    # --- Services select pods and target their ports ---
    for name, s in services.items():
        if s["spec"].get("type") == "ExternalName":
            continue
        sel = s["spec"].get("selector") or {}
        matches = [(o, tpl) for o, tpl in pods if o["kind"] != "Job" and
                   all(((tpl.get("metadata") or {}).get("labels") or {}).get(k) == v for k, v in sel.items())]
        if not matches:
            bad(where, "Service %s selects no pod" % name)
            continue
        for p in s["spec"]["ports"]:
            tp = p.get("targetPort", p["port"])
            for o, tpl in matches:
                declared = [(q.get("name"), q["containerPort"]) for c in tpl["spec"]["containers"] for q in c.get("ports", [])]
                if tp not in [d[0] for d in declared] and tp not in [d[1] for d in declared]:
                    bad(where, "Service %s targets %s, not a port of %s" % (name, tp, o["metadata"]["name"]))


def check_images(objects_by_dir):
    dockerfiles = {"nginx": "nginx/Dockerfile", "db-bootstrap": "deploy/db-bootstrap.Dockerfile",
                   "legacy-api": "deploy/legacy-api.Dockerfile"}
    for objects in objects_by_dir.values():
        for o, tpl in pod_specs(objects):
            for c in tpl["spec"].get("initContainers", []) + tpl["spec"]["containers"]:
                img = c["image"].split(":")[0]
                if not img.startswith("platform/"):
                    continue
                prog = program_of(img)
                df = dockerfiles.get(prog) or "deploy/service.Dockerfile"
                args = {"SERVICE": prog} if prog in SERVICE_NAMES else {}
                if not os.path.isfile(df):
                    bad(img, "no Dockerfile %s" % df)
                    continue
                for line in open(df):
                    m = re.match(r"\s*COPY\s+(?!--from)(.+)$", line)
                    for src in (shlex.split(m.group(1))[:-1] if m else []):
                        for k, v in args.items():
                            src = src.replace("${%s}" % k, v)
                        if not os.path.exists(src):
                            bad(df, "COPY source %s does not exist" % src)


def check_files_referenced():
    listed = set()
    for k in glob.glob("deploy/k8s/**/kustomization.yaml", recursive=True):
        for r in yaml.safe_load(open(k)).get("resources", []):
            listed.add(os.path.normpath(os.path.join(os.path.dirname(k), r)))
    for f in glob.glob("deploy/k8s/**/*.yaml", recursive=True):
        if os.path.basename(f) != "kustomization.yaml" and os.path.normpath(f) not in listed:
            bad(f, "not listed in any kustomization.yaml")


built = json.load(open(sys.argv[1]))
for d, objs in built.items():
    check_build(d, objs)
check_images(built)
check_files_referenced()
for p in problems:
    print(p)
print("k8s-reference: %d builds, %d problems" % (len(built), len(problems)))
sys.exit(1 if problems else 0)

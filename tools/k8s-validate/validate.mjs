// Build the kustomizations under deploy/k8s and check every object against the Kubernetes API
// schemas, without a cluster.
//
//   node validate.mjs [--out FILE.json] KUSTOMIZATION_DIR...
//
// For each directory: the kustomization's `resources` (files, and directories holding their own
// kustomization.yaml), its `namespace`, `labels` (pairs) and `images` (newName/newTag) are applied
// the way `kubectl apply -k` does for these fields; any other kustomization field is an error here,
// so a manifest never relies on something this check does not understand. Each object is then
//   1. validated with kubernetes-models (the API's OpenAPI schemas compiled to validators: types,
//      required fields, enums, formats), and
//   2. walked against the same models' field lists, so an unknown or misspelt field
//      (`readinesProbe`) is an error — the compiled validators alone accept unknown fields, which
//      the API server would silently drop.
// --out writes {"<dir>": [objects...]} for tests/static/run's reference checks.
// Prints one line per problem and "k8s-validate: N objects, M problems"; exit 1 on any problem.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";
import YAML from "yaml";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const modelsRoot = path.dirname(require.resolve("kubernetes-models/package.json"));
const apimachineryRoot = path.dirname(require.resolve("@kubernetes-models/apimachinery/package.json"));
const problems = [];
const problem = (where, msg) => problems.push(`${where}: ${msg}`);

// ---- field lists from the models' type declarations -------------------------------------------
// Every model file declares `export interface IName { "field"?: Type; ... }` and exports it as
// IIoK8s...; the types of fields name other interfaces by those exported names.
const types = new Map(); // exported name -> Map(field -> type text)
function scanDeclarations(dir) {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, entry.name);
        if (entry.isDirectory()) {
            if (entry.name !== "_schemas" && entry.name !== "node_modules") scanDeclarations(p);
            continue;
        }
        if (!entry.name.endsWith(".d.ts")) continue;
        const text = fs.readFileSync(p, "utf8");
        const m = text.match(/export interface (I\w+)(?: extends [\w, ]+)? \{\n([\s\S]*?)\n\}/);
        if (!m) continue;
        const fields = new Map();
        const lines = m[2].split("\n").filter((l) => !/^\s*(\/\*\*|\*)/.test(l));
        for (let i = 0; i < lines.length; i++) {
            const f = lines[i].match(/^ {4}"([^"]+)"\??: (.*)$/);
            if (!f) continue;
            let type = f[2];
            if (type === "{") {   // a map: { [key: string]: T; }
                const inner = [];
                while (++i < lines.length && !/^ {4}\};?$/.test(lines[i])) inner.push(lines[i].trim());
                type = "{map} " + inner.join(" ");
            }
            fields.set(f[1], type);
        }
        const aliases = [...text.matchAll(new RegExp(`\\b${m[1]} as (I\\w+)`, "g"))].map((a) => a[1]);
        for (const name of [m[1], ...aliases]) if (!types.has(name) || name !== m[1]) types.set(name, fields);
        types.set(path.relative(modelsRoot, p), fields);   // the model file itself, for top-level kinds
    }
}
scanDeclarations(modelsRoot);
scanDeclarations(apimachineryRoot);

function walk(value, fields, where) {
    if (value === null || typeof value !== "object" || Array.isArray(value)) return;
    for (const [key, child] of Object.entries(value)) {
        if (!fields.has(key)) { problem(where, `unknown field "${key}"`); continue; }
        const type = fields.get(key);
        const ref = (type.match(/\bI{1,2}IoK8s\w+|\bIIo\w+/) || [])[0];
        const sub = ref && types.get(ref);
        if (!sub || sub.size === 0) continue;   // a scalar, IntOrString, Quantity, free-form JSON
        if (type.startsWith("Array<")) {
            if (Array.isArray(child)) child.forEach((c, i) => walk(c, sub, `${where}.${key}[${i}]`));
        } else if (type.startsWith("{map}")) {
            if (child && typeof child === "object") for (const [k, v] of Object.entries(child)) walk(v, sub, `${where}.${key}.${k}`);
        } else {
            walk(child, sub, `${where}.${key}`);
        }
    }
}

// ---- a kustomize build of the fields these manifests use ---------------------------------------
const KNOWN = new Set(["apiVersion", "kind", "namespace", "resources", "labels", "images"]);
function build(dir) {
    const kfile = path.join(dir, "kustomization.yaml");
    const k = YAML.parse(fs.readFileSync(kfile, "utf8"));
    for (const key of Object.keys(k)) if (!KNOWN.has(key)) problem(kfile, `kustomization field "${key}" is not supported by this check`);
    let objects = [];
    for (const r of k.resources || []) {
        const p = path.join(dir, r);
        if (!fs.existsSync(p)) { problem(kfile, `resource ${r} does not exist`); continue; }
        if (fs.statSync(p).isDirectory()) { objects = objects.concat(build(p)); continue; }
        for (const doc of YAML.parseAllDocuments(fs.readFileSync(p, "utf8"))) {
            if (doc.errors.length) { problem(p, doc.errors[0].message); continue; }
            const o = doc.toJS();
            if (o) objects.push({ source: path.relative(process.cwd(), p), object: o });
        }
    }
    for (const { object: o } of objects) {
        if (k.namespace && o.kind !== "Namespace") (o.metadata ??= {}).namespace = k.namespace;
        for (const l of k.labels || []) {
            Object.assign((o.metadata ??= {}).labels ??= {}, l.pairs);
            const tpl = o.spec?.template?.metadata;
            if (tpl && l.includeTemplates) Object.assign(tpl.labels ??= {}, l.pairs);
        }
        for (const img of k.images || []) {
            const specs = [o.spec?.template?.spec, o.spec?.jobTemplate?.spec?.template?.spec].filter(Boolean);
            for (const s of specs) for (const c of [...(s.containers || []), ...(s.initContainers || [])]) {
                const [name, tag] = c.image.split(/:(?=[^/]*$)/);
                if (name === img.name) c.image = `${img.newName || name}:${img.newTag || tag || "latest"}`;
            }
        }
    }
    return objects;
}

// ---- main ---------------------------------------------------------------------------------------
const args = process.argv.slice(2);
let out = null;
if (args[0] === "--out") { out = args[1]; args.splice(0, 2); }
if (!args.length) { console.error("usage: node validate.mjs [--out FILE] KUSTOMIZATION_DIR..."); process.exit(2); }
const result = {};
let count = 0;
for (const dir of args) {
    const built = build(dir);
    const seen = new Set();
    for (const { source, object: o } of built) {
        const where = `${source}: ${o.kind}/${o.metadata?.name}`;
        const id = `${o.apiVersion}/${o.kind}/${o.metadata?.namespace}/${o.metadata?.name}`;
        if (seen.has(id)) problem(`${dir}: ${where}`, "defined twice");
        seen.add(id);
        count++;
        if (typeof o.apiVersion !== "string" || typeof o.kind !== "string") { problem(where, "apiVersion/kind missing"); continue; }
        const group = o.apiVersion.includes("/") ? o.apiVersion : `v1`;
        const rel = o.apiVersion === "v1" ? `v1/${o.kind}` : `${group}/${o.kind}`;
        const file = path.join(modelsRoot, `${rel}.js`);
        if (!fs.existsSync(file)) { problem(where, `unknown apiVersion/kind ${o.apiVersion} ${o.kind}`); continue; }
        const mod = await import(pathToFileURL(file).href);
        try {
            new mod[o.kind](o).validate();
        } catch (e) {
            problem(where, (e.message || String(e)).split("\n").slice(0, 3).join("; "));
        }
        const fields = types.get(`${rel}.d.ts`);
        if (!fields) problem(where, `no field list for ${rel}`);
        else walk(o, fields, where);
    }
    result[dir] = built.map((b) => ({ ...b.object, "x-source": b.source }));
}
if (out) fs.writeFileSync(out, JSON.stringify(result, null, 1));
for (const p of problems) console.log("k8s-validate: " + p);
console.log(`k8s-validate: ${count} objects, ${problems.length} problems`);
process.exit(problems.length ? 1 : 0);

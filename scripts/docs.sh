#!/usr/bin/env bash
# Build the documentation site: `bash scripts/docs.sh [OUT_DIR]` (default: site/).
#
# 1. installs the `docs` extra of pyproject.toml (and fisherlab's own dependencies) with pip --
#    never fisherlab itself: the site documents this checkout (FISHERLAB_DOCS_NO_INSTALL=1 skips);
# 2. installs KaTeX (npm package `katex`, pinned below) into build/docs/katex with npm: the math
#    is rendered to HTML at build time, so the site needs no network when it is viewed;
# 3. runs docs/build_site.py: verifies every derivation and writes its page, runs the examples,
#    draws the figures, and builds the site with `sphinx-build -W` (strict: see that file).
# Nothing under version control is written; the output and build/ are ignored by git.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-site}"
KATEX_VERSION="0.16.22"
cache="build/docs"
mkdir -p "$cache"

if [ "${FISHERLAB_DOCS_NO_INSTALL:-0}" != "1" ]; then
    python3 - > "$cache/requirements.txt" <<'PY'
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
print("\n".join(project["dependencies"] + project["optional-dependencies"]["docs"]))
PY
    python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -r "$cache/requirements.txt"
fi

for tool in node npm; do
    if ! command -v "$tool" > /dev/null; then
        echo "scripts/docs.sh: '$tool' not found; KaTeX renders the math with Node.js" \
             "(Debian: apt-get install -y nodejs npm)" >&2
        exit 1
    fi
done
katex="$cache/katex/node_modules/katex"
installed="$(node -p "require('./$katex/package.json').version" 2>/dev/null || true)"
if [ "$installed" != "$KATEX_VERSION" ]; then
    npm install --silent --no-save --no-audit --no-fund --prefix "$cache/katex" "katex@$KATEX_VERSION"
fi

# FISHERLAB_DOCS_STAGE: where the sources are assembled (default build/docs/src)
python3 docs/build_site.py "$out" --katex-dir "$katex" ${FISHERLAB_DOCS_STAGE:+--stage "$FISHERLAB_DOCS_STAGE"}

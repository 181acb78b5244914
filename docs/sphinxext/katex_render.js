// Render TeX to HTML with KaTeX on the server (no JavaScript in the built pages).
// Protocol: one JSON request per line on stdin, {"tex": "...", "display": true|false};
// one JSON reply per line on stdout, {"html": "..."} or {"error": "..."}.
// Usage: node katex_render.js KATEX_PACKAGE_DIR
"use strict";
const katex = require(process.argv[2]);
const readline = require("readline");
const rl = readline.createInterface({ input: process.stdin, terminal: false });
rl.on("line", (line) => {
  let reply;
  try {
    const req = JSON.parse(line);
    reply = {
      html: katex.renderToString(req.tex, {
        displayMode: req.display,
        throwOnError: true,
        output: "htmlAndMathml",
        strict: "ignore",
        trust: false,
      }),
    };
  } catch (err) {
    reply = { error: String(err && err.message ? err.message : err) };
  }
  process.stdout.write(JSON.stringify(reply) + "\n");
});

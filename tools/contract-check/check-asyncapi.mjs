// Parses AsyncAPI documents with @asyncapi/parser, the AsyncAPI project's own parser (the one
// AsyncAPI Studio and the generators use). Prints every diagnostic of severity error as
// `file:line:col code message (path)` on stderr and exits 1 if any document has one;
// exits 2 on a usage or read error; prints one line per valid document and exits 0.
//
//   node tools/contract-check/check-asyncapi.mjs contracts/asyncapi.yaml [more.yaml ...]
import { readFile } from "node:fs/promises";
import { DiagnosticSeverity, Parser } from "@asyncapi/parser";

async function errorsOf(parser, path) {
  const text = await readFile(path, "utf8");
  const { diagnostics } = await parser.parse(text, { source: path });
  return diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
}

function describe(path, diagnostic) {
  const start = diagnostic.range?.start ?? { line: 0, character: 0 };
  const where = `${path}:${start.line + 1}:${start.character + 1}`;
  return `${where} ${diagnostic.code} ${diagnostic.message} (at ${diagnostic.path.join(".")})`;
}

async function main(paths) {
  if (paths.length === 0) {
    console.error("usage: check-asyncapi.mjs FILE [FILE ...]");
    return 2;
  }
  const parser = new Parser();
  let failed = false;
  for (const path of paths) {
    const errors = await errorsOf(parser, path);
    for (const error of errors) console.error(describe(path, error));
    if (errors.length > 0) {
      console.error(`${path}: ${errors.length} error(s) from @asyncapi/parser`);
      failed = true;
    } else {
      console.log(`${path}: valid AsyncAPI (@asyncapi/parser)`);
    }
  }
  return failed ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    console.error(`check-asyncapi: ${error.message}`);
    process.exit(2);
  },
);

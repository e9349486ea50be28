// Parse an AsyncAPI document (a file path, JSON or YAML) with the official AsyncAPI parser and
// print its diagnostics as JSON; exit 1 when any is an error.
import { readFileSync } from "node:fs";
import { Parser } from "@asyncapi/parser";

const text = readFileSync(process.argv[2], "utf8");
const { document, diagnostics } = await new Parser().parse(text);
const errors = diagnostics.filter((d) => d.severity === 0);
console.log(JSON.stringify({
  valid: document !== undefined && errors.length === 0,
  version: document ? document.version() : null,
  channels: document ? document.channels().all().map((c) => c.address()) : [],
  diagnostics: diagnostics.map((d) => ({ severity: d.severity, code: d.code, message: d.message, path: d.path })),
}));
process.exit(errors.length === 0 && document ? 0 : 1);

// Validates an AsyncAPI document with the reference parser (@asyncapi/parser): prints every diagnostic as one
// JSON line and exits 1 when any is an error (severity 0), 0 otherwise. Usage: node validate_asyncapi.mjs FILE
import { readFileSync } from "node:fs";
import { Parser } from "@asyncapi/parser";

const parser = new Parser();
const { document, diagnostics } = await parser.parse(readFileSync(process.argv[2], "utf8"));
for (const d of diagnostics) {
  console.log(JSON.stringify({ severity: d.severity, code: d.code, message: d.message, path: d.path }));
}
const errors = diagnostics.filter((d) => d.severity === 0);
if (document === undefined || errors.length > 0) {
  process.exit(1);
}
console.log(JSON.stringify({ ok: true, messages: document.allMessages().length }));
